/**
 * Imported first by run.ts (ESM evaluates imports in order): the AWS SDK in the local stack
 * warns on start that Node 20 leaves its support window in 2027 — noise in a benchmark's output.
 */
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
export {};
