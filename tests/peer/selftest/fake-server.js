#!/usr/bin/env node
'use strict';
// fake-server.js - a tiny stand-in for exposrd, only for self-testing the
// tools in tests/peer without the C server.  NOT a reference: it implements
// just enough of api.md §2 / transports.md §3 / ingress.md §2 for ws-peer.js
// to connect, using @exposr/ws-multiplex on the server side too.
//
//   node selftest/fake-server.js [--port N] [--max-connections N]
//   prints "LISTENING <port>"; ingress hosts are <tunnel>.localhost
//   POST /v1/tunnel/<id>/disconnect closes the tunnel's WebSockets with 1008.

const http = require('node:http');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { WebSocketMultiplex } = require('@exposr/ws-multiplex');
const { parseArgs } = require('../common');
const { enableGracefulClose } = require('../wsm-graceful');

// Deliver everything the peer sent before its CLOSE (like the C server must).
enableGracefulClose();

const opts = parseArgs(process.argv.slice(2), {
    port: { type: 'number', default: 0 },
    'max-connections': { type: 'number', default: 2 },
    'ws-mode': { type: 'string', default: 'normal', help: 'normal | empty401 (reference-style 401, no body) | silent (never answer the upgrade)' },
}, 'usage: node fake-server.js [--port N] [--max-connections N] [--ws-mode MODE]');

const accounts = new Set();
const tunnels = new Map(); // id -> { id, account, token, target, ws: [], wsEnabled, httpEnabled, conns: [] }
let port;
let rr = 0;

function json(res, status, obj) {
    const body = obj === undefined ? '' : JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
}

function tunnelView(t) {
    return {
        id: t.id,
        connection: { connected: t.conns.length > 0, connections: t.conns.length },
        transport: {
            max_connections: opts['max-connections'],
            ws: { enabled: t.wsEnabled, url: `ws://localhost:${port}/v1/tunnel/${t.id}/ws-endpoint?t=${t.token}` },
        },
        ingress: {
            http: t.httpEnabled ? { enabled: true, url: `http://${t.id}.localhost:${port}/`, urls: [`http://${t.id}.localhost:${port}/`], alt_names: [] } : {},
            sni: {},
        },
        target: t.target ? { url: t.target } : {},
    };
}

function auth(req) {
    const tok = (req.headers.authorization || '').split(' ')[1] || '';
    const id = Buffer.from(tok, 'base64').toString();
    return accounts.has(id) ? id : undefined;
}

function readJson(req, cb) {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        try {
            cb(JSON.parse(Buffer.concat(chunks).toString() || '{}'));
        } catch (e) {
            cb(undefined);
        }
    });
}

function apiHandler(req, res) {
    const u = new URL(req.url, 'http://x');
    let m;
    if (req.method === 'POST' && u.pathname === '/v1/account') {
        const id = Array.from(crypto.randomBytes(16), (b) => 'CDEFHJKMNPRTVWXY2345689'[b % 23]).join('');
        accounts.add(id);
        return json(res, 201, { account_id: id, account_id_hr: id.match(/.{4}/g).join('-') });
    }
    if ((m = u.pathname.match(/^\/v1\/account\/([^/]+)\/token$/)) && req.method === 'GET') {
        const id = m[1].replace(/[-\s]/g, '').toUpperCase();
        if (!accounts.has(id)) return json(res, 403, { error: 'PERMISSION_DENIED' });
        return json(res, 201, { token: Buffer.from(id).toString('base64') });
    }
    if ((m = u.pathname.match(/^\/v1\/tunnel\/([a-z0-9-]+)(\/disconnect)?$/))) {
        const acct = auth(req);
        if (!acct) return json(res, 401, { error: 'PERMISSION_DENIED' });
        const id = m[1];
        let t = tunnels.get(id);
        if (u.searchParams.has('kick')) {
            // test hook: POST /v1/tunnel/<id>?kick=CODE closes its WebSockets with CODE
            if (!t) return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
            for (const c of [...t.conns]) c.ws.close(Number(u.searchParams.get('kick')), 'kicked');
            return json(res, 200, { result: true });
        }
        if (m[2]) {
            if (!t) return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
            for (const c of [...t.conns]) c.ws.close(1008, 'tunnel disconnected');
            return json(res, 200, { result: true });
        }
        if (req.method === 'GET') {
            if (!t || t.account !== acct) return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
            return json(res, 200, tunnelView(t));
        }
        if (req.method === 'DELETE') {
            if (!t || t.account !== acct) return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
            for (const c of [...t.conns]) c.ws.close(1008, 'tunnel disconnected');
            tunnels.delete(id);
            res.writeHead(204);
            return res.end();
        }
        if (req.method === 'PUT' || req.method === 'PATCH') {
            return readJson(req, (body) => {
                if (!body) return json(res, 400, { error: 'BAD_INPUT' });
                if (!t) {
                    if (req.method === 'PATCH') return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
                    t = { id, account: acct, token: crypto.randomBytes(64).toString('base64url'), conns: [], wsEnabled: false, httpEnabled: false };
                    tunnels.set(id, t);
                }
                if (t.account !== acct) return json(res, 403, { error: 'PERMISSION_DENIED' });
                if (body.target) t.target = body.target.url || undefined;
                if (body.ingress?.http?.enabled !== undefined) t.httpEnabled = body.ingress.http.enabled;
                if (body.transport?.ws?.enabled !== undefined) t.wsEnabled = body.transport.ws.enabled;
                return json(res, 200, tunnelView(t));
            });
        }
    }
    return json(res, 404, { error: 'NOT_FOUND' });
}

function ingressTunnel(req) {
    const host = (req.headers.host || '').split(':')[0].toLowerCase();
    const m = host.match(/^([^.]+)\.localhost$/);
    return m ? m[1] : undefined;
}

function pickConn(t) {
    if (t.conns.length === 0) return undefined;
    return t.conns[rr++ % t.conns.length];
}

const server = http.createServer((req, res) => {
    const tid = ingressTunnel(req);
    if (tid === undefined) return apiHandler(req, res);
    const t = tunnels.get(tid);
    if (!t) return json(res, 404, { error: 'TUNNEL_NOT_FOUND' });
    const c = pickConn(t);
    if (!c) return json(res, 503, { error: 'TUNNEL_NOT_CONNECTED' });
    const headers = { ...req.headers, 'x-forwarded-host': req.headers.host, 'exposr-via': 'fake' };
    delete headers.connection;
    const up = http.request({
        method: req.method,
        path: req.url,
        headers,
        createConnection: () => c.wsm.createConnection({}),
    }, (ures) => {
        res.writeHead(ures.statusCode, ures.headers);
        ures.pipe(res);
        ures.on('aborted', () => res.destroy());
        ures.on('error', () => res.destroy());
    });
    up.on('error', (err) => {
        if (!res.headersSent) json(res, 502, { error: 'TUNNEL_TARGET_CON_RESET', details: err.message });
        else res.destroy();
    });
    req.pipe(up);
});

const wss = new WebSocket.WebSocketServer({ noServer: true, perMessageDeflate: false });

server.on('upgrade', (req, sock, head) => {
    sock.on('error', () => {});
    const tid = ingressTunnel(req);
    if (tid !== undefined) {
        // Ingress upgrade pass-through: raw splice over a fresh channel.
        const t = tunnels.get(tid);
        const c = t && pickConn(t);
        if (!c) return sock.end('HTTP/1.1 502 Bad Gateway\r\n\r\n{"error":"TUNNEL_NOT_CONNECTED"}');
        const ch = c.wsm.createConnection({});
        ch.on('error', () => sock.destroy());
        let headText = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
        for (let i = 0; i < req.rawHeaders.length; i += 2) headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
        ch.write(headText + '\r\n');
        if (head.length) ch.write(head);
        ch.pipe(sock);
        sock.pipe(ch);
        sock.on('close', () => ch.destroy());
        ch.on('close', () => sock.destroy());
        return;
    }
    const u = new URL(req.url, 'http://x');
    const m = u.pathname.match(/^\/v1\/tunnel\/([^/]+)\/ws-endpoint$/);
    if (!m) return sock.end('HTTP/1.1 404 Not Found\r\n\r\n');
    if (opts['ws-mode'] === 'silent') return;
    if (opts['ws-mode'] === 'empty401') return sock.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
    const t = tunnels.get(m[1]);
    const tok = u.searchParams.get('t') || '';
    if (!t || tok !== t.token) {
        const body = '{"error":"PERMISSION_DENIED"}';
        return sock.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    }
    // Check and rotate before the 101 (transports.md §3.3 BETTER).
    const full = t.conns.length >= opts['max-connections'];
    if (!full) t.token = crypto.randomBytes(64).toString('base64url');
    wss.handleUpgrade(req, sock, head, (ws) => {
        if (full) return ws.close(1008, 'unable to establish tunnel');
        const wsm = new WebSocketMultiplex(ws);
        wsm.on('error', () => {});
        const conn = { ws, wsm };
        t.conns.push(conn);
        ws.on('error', () => {});
        ws.on('close', () => {
            const i = t.conns.indexOf(conn);
            if (i >= 0) t.conns.splice(i, 1);
        });
    });
});

server.listen(opts.port, '127.0.0.1', () => {
    port = server.address().port;
    process.stdout.write(`LISTENING ${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
