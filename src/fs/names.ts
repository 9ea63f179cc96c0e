/**
 * File names the mount accepts (synapse-api.md "Entity names"): Synapse takes ASCII letters,
 * digits, space and , _ . - + ( ) ' — at most 256 characters, and trims spaces. Anything else
 * fails at create/mkdir/rename with EINVAL and a log line naming the rule, so `cp a:b.txt`
 * says "Invalid argument" instead of publishing a renamed file.
 *
 * Editors' scratch files (vim `file~`, `.file.swp`, its `.file.swx` and `4913` probes; emacs `#file#`, `.#file`)
 * are kept local to the mount and never published, so editors can save (documented).
 */
export const MAX_NAME_LENGTH = 256;
const VALID = /^[A-Za-z0-9,_.\-+()' ]+$/;

/** Why Synapse would refuse `name`, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME_LENGTH) return `longer than ${MAX_NAME_LENGTH} characters`;
  if (name !== name.trim()) return 'Synapse trims leading and trailing spaces';
  if (!VALID.test(name)) return "Synapse names may only contain letters, digits, spaces and , _ . - + ( ) '";
  return undefined;
}

export function isScratchName(name: string): boolean {
  return name.endsWith('~')
    || (name.startsWith('#') && name.endsWith('#') && name.length > 1)
    || name.startsWith('.#')
    // vim's swap files (.f.swp, .f.swo, …) and the .f.swx it creates to probe a directory
    || /^\..+\.sw[a-px]$/.test(name)
    || name === '4913';
}
