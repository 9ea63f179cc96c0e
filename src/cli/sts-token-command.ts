/**
 * `synapse-mount sts-token <entity> <read_only|read_write> [-o FORMAT]`: temporary AWS
 * credentials for an STS-enabled folder, printed in the forms of the Python client's
 * `synapse get-sts-token` (synapseclient/core/sts_transfer.py, EXPORT_TEMPLATE_STRINGS):
 *  - json: the StsCredentials object exactly as the server sent it (keys in its order), written
 *    like Python's `json.dumps` (`{"k": "v", …}`, non-ASCII as \uXXXX), as the real CLI does;
 *  - boto: `{"aws_access_key_id", "aws_secret_access_key", "aws_session_token"}` — boto3 kwargs;
 *  - shell/bash: `export NAME="value"` lines; shell is bash here (the real CLI picks bash outside
 *    Windows), the default format as in the real CLI;
 *  - cmd: `set NAME="value"` (the real template: cmd keeps the quotes in the value);
 *  - powershell: `$Env:NAME="value"`.
 * The first line is SYNAPSE_STS_S3_LOCATION="s3://<bucket>/<baseKey>". Like the Python client,
 * when the credentials lack bucket/baseKey we ask the folder's upload destination, and drop that
 * line only when the bucket is still unknown (a location at a bucket's root prints s3://<bucket>).
 *
 * Why escaping: the values come from a server and are meant for `eval`. Each is escaped for its
 * target's double-quoted strings so a hostile value stays one literal string:
 *  - bash: backslash before `\`, `"`, `$` and backquote (the only specials inside "…");
 *  - powershell: backtick before backtick, `$` and every character PowerShell treats as a double
 *    quote (`"` and the typographic quotes U+201C/U+201D/U+201E);
 *  - cmd has no escape inside "…" for `"` or `%`, so values holding `"`, `%`, `!` or line breaks
 *    are refused for cmd (use -o json) rather than printed unsafely.
 * NUL and other C0 control characters are refused in every shell format (no shell can hold NUL
 * in a variable; CR would rewrite the line on a terminal). Real STS values are base64 and
 * alphanumerics, so none of these refusals happens in practice.
 */
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import type { StsCredentials, StsPermission } from '../synapse/types.js';
import { ConfigError } from '../config.js';

export const STS_FORMATS = ['json', 'boto', 'shell', 'bash', 'cmd', 'powershell'] as const;
export type StsFormat = (typeof STS_FORMATS)[number];
export const STS_PERMISSIONS: readonly StsPermission[] = ['read_only', 'read_write'];

/** Python's `json.dumps` with default arguments (separators ", " and ": ", ensure_ascii). */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : value > 0 ? 'Infinity' : value < 0 ? '-Infinity' : 'NaN';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
  }
  return JSON.stringify(String(value));
}

const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function refuseControl(name: string, value: string, format: string): void {
  if (CONTROL.test(value)) {
    throw new ConfigError(`${name} from Synapse contains control characters and cannot be printed for ${format}; use -o json`);
  }
}

/** `value` as the inside of a bash double-quoted string. */
export function bashQuote(value: string): string {
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/** `value` as a PowerShell double-quoted (expandable) string. */
export function powershellQuote(value: string): string {
  return `"${value.replace(/[`$"\u201c\u201d\u201e]/g, (c) => `\`${c}`)}"`;
}

/** `value` as cmd's `"…"`; refuses what cmd cannot hold literally inside quotes. */
export function cmdQuote(name: string, value: string): string {
  if (/["%!\r\n]/.test(value)) {
    throw new ConfigError(`${name} from Synapse contains a character cmd cannot quote safely (", %, ! or a line break); use -o json or powershell`);
  }
  return `"${value}"`;
}

/**
 * The variables to export, in the Python client's order. `location` is null when the bucket is
 * unknown (then the SYNAPSE_STS_S3_LOCATION line is left out, as the Python client does).
 */
function exportVariables(creds: StsCredentials, location: string | null): Array<[string, string]> {
  const vars: Array<[string, string]> = [];
  if (location !== null) vars.push(['SYNAPSE_STS_S3_LOCATION', location]);
  vars.push(['AWS_ACCESS_KEY_ID', creds.accessKeyId], ['AWS_SECRET_ACCESS_KEY', creds.secretAccessKey], ['AWS_SESSION_TOKEN', creds.sessionToken]);
  return vars;
}

export function s3LocationOf(bucket: string | undefined, baseKey: string | undefined): string | null {
  if (!bucket) return null;
  return baseKey ? `s3://${bucket}/${baseKey}` : `s3://${bucket}`;
}

/**
 * Format credentials. `location` is the s3:// URL of the credentials' scope (see s3LocationOf),
 * needed by the shell formats only. The result ends with a newline.
 */
export function formatStsCredentials(creds: StsCredentials, format: StsFormat, location: string | null): string {
  switch (format) {
    case 'json':
      return `${pythonJsonDumps(creds)}\n`;
    case 'boto':
      return `${pythonJsonDumps({
        aws_access_key_id: creds.accessKeyId,
        aws_secret_access_key: creds.secretAccessKey,
        aws_session_token: creds.sessionToken,
      })}\n`;
    case 'shell':
    case 'bash':
      return exportVariables(creds, location).map(([name, value]) => {
        refuseControl(name, value, format);
        return `export ${name}=${bashQuote(value)}\n`;
      }).join('');
    case 'cmd':
      return exportVariables(creds, location).map(([name, value]) => {
        refuseControl(name, value, format);
        return `set ${name}=${cmdQuote(name, value)}\n`;
      }).join('');
    case 'powershell':
      return exportVariables(creds, location).map(([name, value]) => {
        refuseControl(name, value, format);
        return `$Env:${name}=${powershellQuote(value)}\n`;
      }).join('');
  }
}

export interface StsTokenOptions {
  entityId: string;
  permission: StsPermission;
  format: StsFormat;
}

/** Fetch credentials and format them; the text to print. */
export async function runStsToken(api: SynapseApi, opts: StsTokenOptions): Promise<string> {
  const creds = await api.getStsCredentials(opts.entityId, opts.permission).catch((err: unknown) => {
    // Synapse's 400 for a folder outside STS storage names a "project setting" (QA: unexplained).
    if (err instanceof SynapseError && err.status === 400 && /\bSTS\b|project setting/i.test(err.reason)) {
      throw new ConfigError(`${opts.entityId} is not in an STS-enabled storage location, so it has no STS credentials (make an STS folder with \`synapse-mount create-folder --sts\`): ${err.reason} (Synapse 400)`);
    }
    throw err;
  });
  let bucket: string | undefined = creds.bucket;
  let baseKey = creds.baseKey;
  const isShell = opts.format !== 'json' && opts.format !== 'boto';
  if (isShell && (bucket === undefined || baseKey === undefined)) {
    // Older Synapse answers lacked the scope; the upload destination has it (sts_transfer.py does the same).
    const dest = await api.getUploadDestination(opts.entityId).catch(() => undefined);
    bucket ??= dest?.bucket;
    baseKey ??= dest?.baseKey;
  }
  return formatStsCredentials(creds, opts.format, s3LocationOf(bucket, baseKey));
}
