// Minimal typings for fuse-native 2.2.6 (it ships none): only what fuse-adapter.ts uses.
declare module 'fuse-native' {
  export default class Fuse {
    constructor(mountpoint: string, ops: Record<string, unknown>, opts?: Record<string, unknown>);
    mount(cb: (err?: Error | null) => void): void;
    unmount(cb: (err?: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err?: Error | null) => void): void;
  }
}
