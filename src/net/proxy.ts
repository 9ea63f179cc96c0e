/**
 * Networks of HPC centres and companies (issue 9): outbound HTTPS only through a proxy, and TLS
 * inspection with a private CA. The only module that imports undici and the proxy agents.
 *
 * Synapse traffic (and presigned-URL transfers) use Node's global `fetch`. Node 20's fetch does
 * not read proxy variables, so when any of HTTPS_PROXY / HTTP_PROXY (or lower case) is set,
 * `installFetchProxy()` makes undici's EnvHttpProxyAgent the global dispatcher (the symbol it
 * sets is shared with Node's bundled undici; undici 6 is pinned to match Node 20's own). It
 * chooses per request: https → HTTPS_PROXY, http → HTTP_PROXY, NO_PROXY → direct.
 *
 * S3 traffic with STS credentials goes through the AWS SDK's Node handler, which uses
 * http(s).Agent and ignores proxy variables: `s3Agents()` returns agents that decide per
 * request with the same rules (`proxyForUrl`, below) and tunnel through the proxy
 * (https-proxy-agent: CONNECT; http-proxy-agent: absolute-URI requests) or connect directly.
 *
 * CAs: NODE_EXTRA_CA_CERTS is honoured by Node itself for every TLS connection (read at start).
 * AWS_CA_BUNDLE is the AWS tools' variable: when set, the S3 agents trust the certificates in
 * that file *in addition to* Node's defaults and NODE_EXTRA_CA_CERTS (the AWS CLI replaces the
 * trust store instead; adding is kinder to machines whose environment sets it to the system
 * bundle, and never weaker than Node's defaults).
 *
 * NO_PROXY rules (as curl and undici): a comma- or space-separated list; `*` matches all; an
 * entry matches the host itself and its subdomains (`example.org` and `.example.org` both match
 * `s3.example.org`); `host:port` matches that port only; IP addresses match exactly.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { Agent as AgentBase, type AgentConnectOpts } from 'agent-base';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { Agent as UndiciAgent, EnvHttpProxyAgent, setGlobalDispatcher, type Dispatcher } from 'undici';

type Env = Record<string, string | undefined>;

function envVar(env: Env, name: string): string | undefined {
  const v = env[name.toLowerCase()] ?? env[name.toUpperCase()];
  return v && v.trim() ? v.trim() : undefined;
}

/** Is a proxy configured at all? */
export function proxyConfigured(env: Env = process.env): boolean {
  return envVar(env, 'https_proxy') !== undefined || envVar(env, 'http_proxy') !== undefined;
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

/** Does NO_PROXY exempt this host:port? */
export function bypassesProxy(hostname: string, port: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    // host, host:port, [v6]:port, or a bare IPv6 address (several colons, no brackets).
    const bareV6 = !entry.startsWith('[') && (entry.match(/:/g) ?? []).length > 1;
    const m = bareV6 ? undefined : /^(.*?)(?::(\d+))?$/.exec(entry);
    let name = (m?.[1] ?? entry).replace(/^\[|\]$/g, '');
    const entryPort = m?.[2];
    if (entryPort && entryPort !== port) continue;
    if (name.startsWith('*.')) name = name.slice(1);
    if (name.startsWith('.')) {
      if (host.endsWith(name) || host === name.slice(1)) return true;
    } else if (host === name || host.endsWith(`.${name}`)) {
      return true;
    }
  }
  return false;
}

/** The proxy URL for a request to `url`, or undefined for a direct connection. */
export function proxyForUrl(url: string | URL, env: Env = process.env): string | undefined {
  const u = typeof url === 'string' ? new URL(url) : url;
  const proxy = u.protocol === 'https:' ? envVar(env, 'https_proxy') : u.protocol === 'http:' ? envVar(env, 'http_proxy') : undefined;
  if (!proxy) return undefined;
  if (bypassesProxy(u.hostname, u.port || defaultPort(u.protocol), envVar(env, 'no_proxy'))) return undefined;
  return proxy.includes('://') ? proxy : `http://${proxy}`;
}

/** Route the global fetch through HTTPS_PROXY/HTTP_PROXY/NO_PROXY when they are set. */
export function installFetchProxy(env: Env = process.env): boolean {
  if (!proxyConfigured(env)) return false;
  setGlobalDispatcher(new EnvHttpProxyAgent());
  return true;
}

let caCache: { key: string; ca: string[] | undefined } | undefined;

/** Trust anchors for S3 when AWS_CA_BUNDLE is set: Node's defaults + NODE_EXTRA_CA_CERTS + the bundle. */
export function s3CaCertificates(env: Env = process.env): string[] | undefined {
  const bundle = env['AWS_CA_BUNDLE'];
  const extra = env['NODE_EXTRA_CA_CERTS'];
  const key = `${bundle ?? ''}\0${extra ?? ''}`;
  if (caCache?.key === key) return caCache.ca;
  let ca: string[] | undefined;
  if (bundle) {
    ca = [...tls.rootCertificates];
    for (const file of [extra, bundle]) {
      if (!file) continue;
      try {
        ca.push(readFileSync(file, 'utf8'));
      } catch (err) {
        if (file === bundle) throw new Error(`AWS_CA_BUNDLE=${bundle}: ${(err as Error).message}`);
      }
    }
  }
  caCache = { key, ca };
  return ca;
}

let fetchDispatcher: { key: string; dispatcher: Dispatcher | undefined } | undefined;

/**
 * For fetch() of S3 URLs (presigned GETs that the lean reader handed over): a dispatcher that
 * trusts AWS_CA_BUNDLE as the S3 agents do — through the proxy variables too — or undefined
 * (the global dispatcher) when the bundle is not set. Synapse's own fetches never use it.
 */
export function s3FetchDispatcher(env: Env = process.env): Dispatcher | undefined {
  const ca = s3CaCertificates(env);
  const key = `${env['AWS_CA_BUNDLE'] ?? ''}\0${proxyConfigured(env)}`;
  if (fetchDispatcher?.key !== key) {
    fetchDispatcher = {
      key,
      dispatcher: !ca ? undefined : proxyConfigured(env)
        ? new EnvHttpProxyAgent({ connect: { ca }, requestTls: { ca } } as ConstructorParameters<typeof EnvHttpProxyAgent>[0])
        : new UndiciAgent({ connect: { ca } }),
    };
  }
  return fetchDispatcher.dispatcher;
}

/**
 * An agent that picks, per request, a direct agent or a proxy agent by `proxyForUrl`. Proxy
 * agents are kept per proxy URL; the request's TLS options (our `ca`) reach the origin's TLS
 * handshake inside the tunnel, because agent-base passes the merged request options on.
 */
class EnvProxyAgent extends AgentBase {
  private readonly proxied = new Map<string, http.Agent>();

  constructor(
    private readonly secure: boolean,
    private readonly direct: http.Agent,
    private readonly agentOpts: http.AgentOptions & tls.ConnectionOptions,
    private readonly env: Env,
  ) {
    // No pooling at this level (the chosen agent pools): with a finite maxSockets, http.Agent
    // would queue requests here waiting for sockets this agent never owns. keepAlive stays as
    // asked, though: ClientRequest reads it from this agent, and without it every S3 request
    // said `Connection: close` — a new CONNECT tunnel and TLS handshake per ranged GET. The
    // sockets go back to the chosen agent's pool (its listeners, not ours, are on them).
    super({ ...agentOpts, maxSockets: Infinity, maxTotalSockets: Infinity });
    this.protocol = secure ? 'https:' : 'http:';
  }

  override connect(_req: http.ClientRequest, opts: AgentConnectOpts): http.Agent | Duplex {
    const protocol = this.secure ? 'https:' : 'http:';
    const host = opts.host ?? 'localhost';
    const url = `${protocol}//${host.includes(':') ? `[${host}]` : host}:${opts.port ?? defaultPort(protocol)}/`;
    const proxy = proxyForUrl(url, this.env);
    if (!proxy) return this.direct;
    if (this.secure && net.isIP(host) !== 0) {
      // https-proxy-agent starts the origin's TLS without `host`, and an IP is no SNI name, so
      // Node would check the certificate against "localhost": check it against the real IP.
      (opts as tls.ConnectionOptions).checkServerIdentity = (_name, cert) => tls.checkServerIdentity(host, cert);
    }
    let agent = this.proxied.get(proxy);
    if (!agent) {
      const { ca: _ca, ...proxyOpts } = this.agentOpts;
      agent = this.secure ? new HttpsProxyAgent(proxy, proxyOpts) : new HttpProxyAgent(proxy, proxyOpts);
      this.proxied.set(proxy, agent);
    }
    return agent;
  }

  override destroy(): void {
    this.direct.destroy();
    for (const a of this.proxied.values()) a.destroy();
    super.destroy();
  }
}

/** http/https agents for the AWS SDK: proxy variables and AWS_CA_BUNDLE applied. */
export function s3Agents(agentOpts: http.AgentOptions, env: Env = process.env): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  const ca = s3CaCertificates(env);
  const tlsOpts = { ...agentOpts, ...(ca ? { ca } : {}) };
  if (!proxyConfigured(env)) {
    return { httpAgent: new http.Agent(agentOpts), httpsAgent: new https.Agent(tlsOpts) };
  }
  return {
    httpAgent: new EnvProxyAgent(false, new http.Agent(agentOpts), agentOpts, env),
    // agent-base's Agent is an http.Agent that also serves https (isSecureEndpoint).
    httpsAgent: new EnvProxyAgent(true, new https.Agent(tlsOpts), tlsOpts, env) as unknown as https.Agent,
  };
}
