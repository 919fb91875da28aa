// uptls target node-http-proxy: npm http-proxy 1.18.1 as people configure it.
//
//   node runner.js CONFIG.json
//
// CONFIG (rendered by harness/uptls/targets/node_http_proxy.py):
//   listen: {host, port}
//   hosts:  {name: address}   names this process resolves itself (the test
//                             names of the backends; a stand-in for /etc/hosts)
//   routes: [{prefix, label, targets: [{host, port}], options, agent, agent_why}]
//     options: the http-proxy options -- secure, changeOrigin, proxyTimeout,
//              and file names for ca (option `ca`) and for the target
//              object's cert, key, passphrase, ciphers (http-proxy copies
//              those from `target`: lib/http-proxy/common.js setupOutgoing)
//     agent:   null (http-proxy's default, agent: false: a new connection
//              and no session cache per request) or the options of an
//              explicit https.Agent, for what http-proxy has no option for
//              (servername, checkServerIdentity name, min/maxVersion, crl,
//              session cache, keep-alive); agent_why says which setting
//              needed it, and it is logged at start.
// One http server; a request goes to the route whose prefix it starts with,
// round robin over its targets (http-proxy has no upstream groups: people
// pick the target per request with proxy.web(req, res, {target})).
'use strict';

const dns = require('dns');
const fs = require('fs');
const http = require('http');
const https = require('https');
const tls = require('tls');
const httpProxy = require('http-proxy');

const conf = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const hosts = conf.hosts || {};

// The backends' test names resolve to the loopback addresses given.
const realLookup = dns.lookup;
dns.lookup = function lookup(host, opts, cb) {
  if (typeof opts === 'function') { cb = opts; opts = {}; }
  const addr = hosts[host];
  if (addr === undefined) return realLookup.call(dns, host, opts, cb);
  const family = addr.includes(':') ? 6 : 4;
  if (opts && opts.all) return process.nextTick(cb, null, [{ address: addr, family }]);
  return process.nextTick(cb, null, addr, family);
};

const read = (f) => fs.readFileSync(f);

// TLS 1.3 suites and the TLS <= 1.2 list share Node's one `ciphers` option
// (tls.createSecureContext: names starting TLS_ are TLS 1.3 suites).
function cipherString(o) {
  if (!o.ciphersuites) return o.ciphers;
  const tls12 = o.ciphers || tls.DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':');
  return `${o.ciphersuites}:${tls12}`;
}

function makeAgent(a) {
  if (!a) return null;
  const opts = { ...a };
  delete opts.verifyName;
  delete opts.crlFile;
  if (a.crlFile) opts.crl = read(a.crlFile);
  if (a.verifyName !== undefined) {
    // The name checked, apart from the name sent in SNI.
    opts.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(a.verifyName, cert);
  }
  return new https.Agent(opts);
}

function makeRoute(r) {
  const o = r.options;
  const agent = makeAgent(r.agent);
  const proxies = r.targets.map((t) => {
    const target = { protocol: 'https:', host: t.host, port: t.port };
    if (o.certFile) target.cert = read(o.certFile);
    if (o.keyFile) target.key = read(o.keyFile);
    if (o.passphraseFile) target.passphrase = read(o.passphraseFile).toString().split('\n')[0];
    const ciphers = cipherString(o);
    if (ciphers) target.ciphers = ciphers;
    const options = { target };
    if (o.secure !== undefined) options.secure = o.secure;
    if (o.changeOrigin !== undefined) options.changeOrigin = o.changeOrigin;
    if (o.caFile) options.ca = read(o.caFile);
    if (o.proxyTimeout !== undefined) options.proxyTimeout = o.proxyTimeout;
    if (agent) options.agent = agent;
    const proxy = httpProxy.createProxyServer(options);
    proxy.on('error', (err, req, res) => {
      console.error(`${r.label}: upstream error: ${err.code || ''} ${err.message}`);
      if (res.headersSent) { res.destroy(); return; }
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`502 upstream error: ${err.code || err.message}\n`);
    });
    return proxy;
  });
  console.error(`${r.label}: agent: ${r.agent ? 'explicit https.Agent' : "none (http-proxy's default, agent: false)"}` +
                (r.agent_why ? ` -- ${r.agent_why}` : ''));
  let next = 0;
  return { prefix: r.prefix, pick: () => proxies[next++ % proxies.length] };
}

const routes = conf.routes.map(makeRoute);

// An absolute-form target (GET http://host/path, RFC 9112 3.2.2) is routed
// by its path, as a location is matched; http-proxy itself sends the path
// only (common.js setupOutgoing: url.parse(req.url).path).
function routePath(target) {
  if (target.startsWith('/')) return target;
  const u = new URL(target); // throws on a malformed target: answered 400
  return u.pathname + u.search;
}

const server = http.createServer((req, res) => {
  let path;
  try { path = routePath(req.url); } catch (e) { res.writeHead(400); res.end('bad request target\n'); return; }
  const route = routes.find((r) => path.startsWith(r.prefix));
  if (!route) { res.writeHead(404); res.end('no route\n'); return; }
  route.pick().web(req, res);
});
server.listen(conf.listen.port, conf.listen.host, () => {
  console.error(`listening on ${conf.listen.host}:${conf.listen.port}: http-proxy ` +
                `${require('http-proxy/package.json').version}, node ${process.version}, ` +
                `OpenSSL ${process.versions.openssl}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
