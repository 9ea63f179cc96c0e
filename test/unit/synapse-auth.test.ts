/**
 * Token discovery: order (option, file, env, config), ~/.synapseConfig parsing in a temp HOME,
 * endpoint derivation, HOME unset, permission warning, and the one-line error naming the sources.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, chmod, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthError,
  baseFromRepoEndpoint,
  configFileWarning,
  defaultConfigPath,
  discoverAuth,
  parseIni,
} from '../../src/synapse/auth.js';

let dir: string;
let home: string;
const CONFIG = `
# comment
[authentication]
authtoken = config-token-123

[endpoints]
repoEndpoint = https://repo.example.org/repo/v1/
fileHandleEndpoint = https://repo.example.org/file/v1
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synapse-auth-'));
  home = join(dir, 'home');
  await mkdir(home);
  await writeFile(join(home, '.synapseConfig'), CONFIG, { mode: 0o600 });
  await chmod(join(home, '.synapseConfig'), 0o600);
  await writeFile(join(dir, 'token.txt'), '  file-token-456\n');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('explicit token wins over everything', async () => {
  const r = await discoverAuth({ token: ' opt ', tokenFile: join(dir, 'token.txt'), env: { HOME: home, SYNAPSE_AUTH_TOKEN: 'env' } });
  assert.equal(r.token, 'opt');
  assert.equal(r.source, 'option');
  assert.equal(r.endpoint, 'https://repo.example.org', 'endpoint from config whatever the token source');
});

test('token file is next, trimmed; one others can read gets the same warning as the config file (QA)', async () => {
  const file = join(dir, 'token.txt');
  await chmod(file, 0o600);
  const r = await discoverAuth({ tokenFile: file, env: { HOME: home, SYNAPSE_AUTH_TOKEN: 'env' } });
  assert.deepEqual([r.token, r.source, r.warning], ['file-token-456', 'file', undefined]);
  await chmod(file, 0o644);
  const open = await discoverAuth({ tokenFile: file, env: { HOME: home } });
  assert.match(open.warning ?? '', /token\.txt holds a Synapse token but has mode 644 .*chmod 600/);
  await chmod(file, 0o600);
});

test('SYNAPSE_AUTH_TOKEN before the config file', async () => {
  const r = await discoverAuth({ env: { HOME: home, SYNAPSE_AUTH_TOKEN: ' env-tok \n' } });
  assert.deepEqual([r.token, r.source], ['env-tok', 'env']);
});

test('config file [authentication] authtoken last; endpoint base derived from repoEndpoint', async () => {
  const r = await discoverAuth({ env: { HOME: home, SYNAPSE_AUTH_TOKEN: '  ' } });
  assert.equal(r.token, 'config-token-123');
  assert.equal(r.source, 'config');
  assert.equal(r.endpoint, 'https://repo.example.org');
  assert.equal(r.configPath, join(home, '.synapseConfig'));
  assert.equal(r.warning, undefined, 'mode 600 gives no warning');
});

test('explicit configPath is used instead of $HOME/.synapseConfig', async () => {
  const p = join(dir, 'other.cfg');
  await writeFile(p, '[authentication]\nAuthToken: other-token\n', { mode: 0o600 });
  const r = await discoverAuth({ configPath: p, env: { HOME: home } });
  assert.deepEqual([r.token, r.source, r.endpoint], ['other-token', 'config', undefined]);
});

test('a missing explicit config file is an error; a missing default one is not', async () => {
  await assert.rejects(discoverAuth({ configPath: join(dir, 'nope'), env: { SYNAPSE_AUTH_TOKEN: 'x' } }), (e: unknown) => {
    assert.ok(e instanceof AuthError);
    assert.equal(e.code, 'CONFIG_FILE');
    return true;
  });
  const r = await discoverAuth({ env: { HOME: join(dir, 'empty-home'), SYNAPSE_AUTH_TOKEN: 'x' } });
  assert.equal(r.source, 'env');
  assert.equal(r.configPath, undefined);
});

test('HOME unset: no crash, env token still found; fallback home used for the config', async () => {
  const r = await discoverAuth({ env: { SYNAPSE_AUTH_TOKEN: 'boot' }, fallbackHome: null });
  assert.deepEqual([r.token, r.source], ['boot', 'env']);
  assert.equal(defaultConfigPath({}, null), undefined);
  const r2 = await discoverAuth({ env: {}, fallbackHome: home });
  assert.deepEqual([r2.token, r2.source], ['config-token-123', 'config']);
  // The real passwd lookup must not throw either.
  assert.doesNotThrow(() => defaultConfigPath({}));
});

test('no token anywhere: AuthError NO_TOKEN, one line naming the three sources, no crash without HOME', async () => {
  for (const opts of [{ env: { HOME: join(dir, 'empty-home') } }, { env: {}, fallbackHome: null }]) {
    await assert.rejects(discoverAuth(opts), (e: unknown) => {
      assert.ok(e instanceof AuthError);
      assert.equal(e.code, 'NO_TOKEN');
      assert.doesNotMatch(e.message, /\n/);
      assert.match(e.message, /--auth-token-file/);
      assert.match(e.message, /SYNAPSE_AUTH_TOKEN/);
      assert.match(e.message, /\.synapseConfig/);
      return true;
    });
  }
});

test('token file problems are AuthError TOKEN_FILE and never fall through to other sources', async () => {
  await assert.rejects(discoverAuth({ tokenFile: join(dir, 'missing'), env: { SYNAPSE_AUTH_TOKEN: 'x' } }), /ENOENT/);
  const empty = join(dir, 'empty.txt');
  await writeFile(empty, ' \n');
  await assert.rejects(discoverAuth({ tokenFile: empty, env: { SYNAPSE_AUTH_TOKEN: 'x' } }), (e: unknown) => {
    assert.ok(e instanceof AuthError);
    assert.equal(e.code, 'TOKEN_FILE');
    assert.match(e.message, /empty/);
    return true;
  });
});

test('group/other-readable config: warning string; private: null; missing: null', async () => {
  const p = join(dir, 'loose.cfg');
  await writeFile(p, '[authentication]\nauthtoken=loose\n');
  await chmod(p, 0o644);
  const w = await configFileWarning(p);
  assert.ok(w !== null);
  assert.match(w, /644/);
  assert.match(w, /chmod 600/);
  assert.doesNotMatch(w, /loose\n/);
  const r = await discoverAuth({ configPath: p, env: {} });
  assert.equal(r.warning, w);
  await chmod(p, 0o640);
  assert.ok((await configFileWarning(p)) !== null);
  await chmod(p, 0o600);
  assert.equal(await configFileWarning(p), null);
  assert.equal(await configFileWarning(join(dir, 'does-not-exist')), null);
});

test('INI parsing follows configparser: separators, comments, case, continuation, [default] fallback', () => {
  const ini = parseIni([
    'stray = ignored',
    '[authentication]',
    '; comment',
    'AuthToken : abc',
    '  def',
    '[endpoints]',
    'repoEndpoint=https://x/repo/v1',
    '[Profile]',
    'Key = V',
  ].join('\r\n'));
  assert.equal(ini.get('authentication')?.get('authtoken'), 'abc\ndef');
  assert.equal(ini.get('endpoints')?.get('repoendpoint'), 'https://x/repo/v1');
  assert.equal(ini.get('Profile')?.get('key'), 'V');
  assert.equal(ini.size, 3);
  assert.equal(baseFromRepoEndpoint('https://repo-prod.prod.sagebase.org/repo/v1'), 'https://repo-prod.prod.sagebase.org');
  assert.equal(baseFromRepoEndpoint('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
});

test('newer profile format: [default] authtoken used when [authentication] has none', async () => {
  const p = join(dir, 'profiles.cfg');
  await writeFile(p, '[default]\nusername = u\nauthtoken = default-token\n\n[profile other]\nauthtoken = other\n', { mode: 0o600 });
  const r = await discoverAuth({ configPath: p, env: {} });
  assert.deepEqual([r.token, r.source], ['default-token', 'config']);
});
