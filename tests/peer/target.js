#!/usr/bin/env node
'use strict';
// target.js - local HTTP + WebSocket test target for the exposrd integration
// tests (Node >= 18).  See README.md in this directory for the route list.

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const crypto = require('node:crypto');
const { pipeline } = require('node:stream');
const { WebSocketServer } = require('ws');
const { parseArgs, prngStream, oneLine } = require('./common');

const SPEC = {
    port: { type: 'number', default: 0, help: 'listen port (0 = pick one; printed as "LISTENING <port>")' },
    host: { type: 'string', default: '127.0.0.1', help: 'listen address' },
    'keep-alive-timeout': { type: 'number', help: 'server keep-alive timeout in ms (Node default 5000)' },
    'tls-cert': { type: 'string', help: 'PEM certificate file: serve HTTPS/WSS instead of HTTP/WS' },
    'tls-key': { type: 'string', help: 'PEM private key file for --tls-cert' },
    verbose: { type: 'bool', default: false, help: 'log every request on stderr' },
    'gen-bytes': { type: 'number', help: 'do not serve: write N /bytes bytes for --seed to stdout and exit' },
    seed: { type: 'number', default: 0, help: 'seed for --gen-bytes' },
};
const USAGE = 'usage: node target.js [--port N] [--host ADDR] [--verbose]\n' +
              '       node target.js --gen-bytes N [--seed S] > file';

const opts = parseArgs(process.argv.slice(2), SPEC, USAGE);

if (opts['gen-bytes'] !== undefined) {
    pipeline(prngStream(opts['gen-bytes'], opts.seed), process.stdout, (err) => {
        if (err && err.code !== 'EPIPE') {
            process.stderr.write(`gen-bytes: ${err.message}\n`);
            process.exit(1);
        }
    });
    return;
}

const log = (...a) => opts.verbose && process.stderr.write(`[target] ${a.join(' ')}\n`);
const stats = { connections: 0, open_connections: 0, requests: 0, upgrades: 0 };

function intParam(q, name, def, max = Number.MAX_SAFE_INTEGER) {
    const v = q.get(name);
    if (v === null || v === '') return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > max) return NaN;
    return n;
}

function send(res, status, body, type = 'text/plain') {
    const buf = Buffer.from(body);
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': buf.length });
    res.end(buf);
}

function sendJson(res, status, obj) {
    send(res, status, JSON.stringify(obj) + '\n', 'application/json');
}

function requestInfo(req) {
    return {
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remoteAddress: req.socket.remoteAddress,
    };
}

function onError(res) {
    return (err) => {
        if (err) {
            log('stream error', err.code || err.message);
            res.destroy();
        }
    };
}

function handle(req, res) {
    stats.requests++;
    const u = new URL(req.url, 'http://target.invalid');
    const q = u.searchParams;
    const path = u.pathname;
    log(req.method, req.url, `host=${req.headers.host}`);

    switch (path) {
    case '/':
    case '/hello':
        return send(res, 200, 'hello');

    case '/echo-headers':
        // The request headers exactly as Node parsed them: names lowercased,
        // duplicates comma-joined (set-cookie kept as an array).
        return sendJson(res, 200, req.headers);

    case '/echo-request':
        return sendJson(res, 200, requestInfo(req));

    case '/echo': {
        // Streams the request body back as it arrives (backpressure via pipeline).
        const headers = { 'Content-Type': req.headers['content-type'] || 'application/octet-stream' };
        if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] === undefined) {
            headers['Content-Length'] = req.headers['content-length'];
        }
        res.writeHead(200, headers);
        return pipeline(req, res, onError(res));
    }

    case '/sha256': {
        // Body: "<hex sha256> <length>\n".  Any method with a body works.
        // ?delay=MS: slow reader, stops reading for MS ms after every chunk
        // received (so the tunnel has to apply backpressure).
        const h = crypto.createHash('sha256');
        const delay = intParam(q, 'delay', 0, 60000);
        if (Number.isNaN(delay)) return send(res, 400, 'bad parameter\n');
        let len = 0;
        req.on('data', (d) => {
            h.update(d);
            len += d.length;
            if (delay > 0) {
                req.pause();
                setTimeout(() => req.resume(), delay);
            }
        });
        req.on('end', () => send(res, 200, `${h.digest('hex')} ${len}\n`));
        req.on('error', () => res.destroy());
        return;
    }

    case '/bytes':
    case '/bytes-chunked':
    case '/slow': {
        const slow = path === '/slow';
        const n = intParam(q, 'n', 0);
        const seed = intParam(q, 'seed', 0, 0xffffffff);
        const chunk = intParam(q, 'chunk', 64 * 1024, 16 * 1024 * 1024);
        const delay = intParam(q, 'delay', slow ? 10 : 0, 60000);
        if ([n, seed, chunk, delay].some(Number.isNaN) || chunk < 4) {
            return send(res, 400, 'bad parameter\n');
        }
        const headers = { 'Content-Type': 'application/octet-stream' };
        if (path !== '/bytes-chunked') headers['Content-Length'] = n;
        res.writeHead(200, headers);
        if (req.method === 'HEAD') return res.end();
        // Request body, if any, is drained and ignored.
        req.resume();
        return pipeline(prngStream(n, seed, chunk, delay), res, onError(res));
    }

    case '/bytes-sha256': {
        // The sha256 of what /bytes?n=N&seed=S returns: "<hex> <n>\n".
        const n = intParam(q, 'n', 0);
        const seed = intParam(q, 'seed', 0, 0xffffffff);
        if (Number.isNaN(n) || Number.isNaN(seed)) return send(res, 400, 'bad parameter\n');
        const h = crypto.createHash('sha256');
        const s = prngStream(n, seed);
        s.on('data', (d) => h.update(d));
        s.on('end', () => send(res, 200, `${h.digest('hex')} ${n}\n`));
        return;
    }

    case '/status': {
        // /status?code=N: empty body (no body at all for 204/304/HEAD).
        const code = intParam(q, 'code', 200, 999);
        if (Number.isNaN(code) || code < 200) return send(res, 400, 'bad code\n');
        res.writeHead(code, code === 204 || code === 304 ? {} : { 'Content-Length': 0 });
        return res.end();
    }

    case '/delay': {
        // /delay?ms=N: answer "ok" after N ms.
        const ms = intParam(q, 'ms', 1000, 3600000);
        if (Number.isNaN(ms)) return send(res, 400, 'bad parameter\n');
        const t = setTimeout(() => send(res, 200, 'ok'), ms);
        res.on('close', () => clearTimeout(t));
        return;
    }

    case '/truncate': {
        // /truncate?n=N: promise 2N bytes (Content-Length), send N, then reset.
        const n = intParam(q, 'n', 1024);
        if (Number.isNaN(n)) return send(res, 400, 'bad parameter\n');
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 2 * n });
        res.write(Buffer.alloc(n, 0x61), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
    }

    case '/close':
        // Drop the connection without any response.
        return req.socket.destroy();

    case '/stats':
        return sendJson(res, 200, stats);

    default:
        return send(res, 404, 'not found\n');
    }
}

const server = opts['tls-cert']
    ? https.createServer({ cert: fs.readFileSync(opts['tls-cert']), key: fs.readFileSync(opts['tls-key'] || opts['tls-cert']) }, handle)
    : http.createServer(handle);
if (opts['keep-alive-timeout'] !== undefined) server.keepAliveTimeout = opts['keep-alive-timeout'];
server.on('connection', (sock) => {
    stats.connections++;
    stats.open_connections++;
    sock.on('close', () => stats.open_connections--);
});
server.on('tlsClientError', (err) => log('tls client error', err.code || err.message));
server.on('clientError', (err, sock) => {
    log('client error', err.code || err.message);
    if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else sock.destroy();
});

// WebSocket echo: /ws sends "ws echo connected" first, /ws-headers sends the
// upgrade request as JSON (see /echo-request) first.  Both then echo every
// message with its type (text or binary) preserved.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, sock, head) => {
    stats.upgrades++;
    const path = new URL(req.url, 'http://target.invalid').pathname;
    log('UPGRADE', req.url, `host=${req.headers.host}`);
    sock.on('error', () => {});
    if (path !== '/ws' && path !== '/ws-headers') {
        sock.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 10\r\n\r\nnot found\n');
        return;
    }
    wss.handleUpgrade(req, sock, head, (ws) => {
        ws.on('error', (err) => log('ws error', err.message));
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        ws.send(path === '/ws' ? 'ws echo connected' : JSON.stringify(requestInfo(req)));
    });
});

server.listen(opts.port, opts.host, () => {
    process.stdout.write(`LISTENING ${server.address().port}\n`);
});
server.on('error', (err) => {
    process.stderr.write(`target: ${oneLine(err.message)}\n`);
    process.exit(1);
});

function shutdown() {
    for (const ws of wss.clients) ws.terminate();
    server.close(() => process.exit(0));
    if (server.closeAllConnections) server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
