/**
 * The mount-helper `-o` list (issue 9) and the proxy rules for Synapse and S3 traffic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config.js';
import { expandMountOptions, MOUNT_FLAGS, splitOptionList } from '../../src/cli/mount-options.js';
import { bypassesProxy, proxyForUrl } from '../../src/net/proxy.js';

test('mount.fuse argv becomes long flags', () => {
  assert.deepEqual(
    expandMountOptions(['syn123', '/mnt/syn', '-o', 'ro,allow_other,cache_dir=/x,cache-dir-size=2G,uid=1000,file_mode=0444,nofail']),
    ['syn123', '/mnt/syn', '--read-only', '--allow-other', '--cache-dir=/x', '--cache-dir-size=2G', '--uid=1000', '--file-mode=0444'],
  );
});

test('standard options are accepted without effect; rw and ro: the last wins', () => {
  const std = 'rw,defaults,nofail,noauto,auto,_netdev,user,users,nouser,suid,nosuid,dev,nodev,exec,noexec,async,noatime,relatime,x-systemd.automount,x-systemd.requires=network-online.target,comment=systemd.automount';
  assert.deepEqual(expandMountOptions(['syn1', '/m', '-o', std]), ['syn1', '/m', '--no-read-only']);
  assert.deepEqual(expandMountOptions(['syn1', '/m', '-o', 'ro', '-orw']), ['syn1', '/m', '--no-read-only']);
  assert.deepEqual(expandMountOptions(['syn1', '/m', '-o', 'rw,ro']), ['syn1', '/m', '--read-only']);
});

test('switches take no value, =true/false, or no_ prefix', () => {
  assert.deepEqual(expandMountOptions(['s', 'm', '-o', 'no_sts,allow_other=false']), ['s', 'm', '--no-sts', '--no-allow-other']);
  assert.deepEqual(expandMountOptions(['s', 'm', '-o', 'sts=yes']), ['s', 'm', '--sts']);
  assert.throws(() => expandMountOptions(['s', 'm', '-o', 'sts=maybe']), ConfigError);
});

test('unknown options fail and list the valid ones', () => {
  assert.throws(() => expandMountOptions(['s', 'm', '-o', 'ro,cache_dri=/x']), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /cache_dri=\/x: unknown mount option/);
    assert.match(err.message, /cache_dir=VALUE/);
    assert.match(err.message, /allow_other/);
    assert.match(err.message, /nofail/);
    return true;
  });
  assert.throws(() => expandMountOptions(['s', 'm', '-o', 'cache_dir']), /needs a value/);
  assert.throws(() => expandMountOptions(['s', 'm', '-o']), /needs a list/);
  assert.throws(() => expandMountOptions(['s', 'm', '--cache-dir', '/a', '-o', 'cache_dir=/b']), /given both/);
});

test('values may hold = and quoted commas', () => {
  assert.deepEqual(splitOptionList('a,"b,c",d=e=f'), ['a', 'b,c', 'd=e=f']);
  assert.deepEqual(expandMountOptions(['s', 'm', '-o', 'endpoint=http://h:1/x?a=b']), ['s', 'm', '--endpoint=http://h:1/x?a=b']);
});

test('subcommands and argv without -o are left alone', () => {
  const sts = ['sts-token', 'syn1', 'read_only', '-o', 'json'];
  assert.equal(expandMountOptions(sts), sts);
  const plain = ['syn1', '/m', '--read-only'];
  assert.equal(expandMountOptions(plain), plain);
  assert.ok(Object.keys(MOUNT_FLAGS).includes('cache-dir'));
});

test('proxy choice: scheme, NO_PROXY hosts, domains, ports, wildcard', () => {
  const env = { HTTPS_PROXY: 'http://proxy:3128', http_proxy: 'proxy2:8080', NO_PROXY: 'localhost,.internal.org,example.com:8443,10.1.2.3' };
  assert.equal(proxyForUrl('https://repo-prod.prod.sagebase.org/repo/v1', env), 'http://proxy:3128');
  assert.equal(proxyForUrl('http://s3.amazonaws.com/', env), 'http://proxy2:8080', 'lower-case http_proxy, scheme added');
  assert.equal(proxyForUrl('https://localhost:9000/', env), undefined);
  assert.equal(proxyForUrl('https://s3.internal.org/', env), undefined);
  assert.equal(proxyForUrl('https://internal.org/', env), undefined);
  assert.equal(proxyForUrl('https://notinternal.org/', env), 'http://proxy:3128');
  assert.equal(proxyForUrl('https://example.com:8443/', env), undefined);
  assert.equal(proxyForUrl('https://example.com/', env), 'http://proxy:3128', 'another port is proxied');
  assert.equal(proxyForUrl('https://10.1.2.3/', env), undefined);
  assert.equal(proxyForUrl('https://x.org/', {}), undefined, 'no proxy configured');
  assert.equal(proxyForUrl('https://x.org/', { HTTPS_PROXY: 'http://p:1', no_proxy: '*' }), undefined);
  assert.ok(bypassesProxy('[::1]', '443', '::1'));
});
