#!/usr/bin/env node
'use strict';
// ws-peer.js - a tunnel client for the exposrd integration tests that behaves
// like `exposr tunnel connect` (exposr 0.10.0): same API sequence (api.md
// §2.9), same multiplexer (@exposr/ws-multiplex 1.4.0 on a `ws` WebSocket),
// one TCP/TLS connection to the target per channel the server opens.
//
// Machine-readable lines on stdout (one event per line):
//   ACCOUNT <account_id>              account used (created or given)
//   CONNECTED <open>/<N>              a WebSocket connection opened
//   READY <tunnel-id> <ingress-url>   all N connections are open (printed once)
//   CLOSED <code> <reason>            an open WebSocket connection closed
//   UPGRADE-ERROR <status> <body>     non-101 answer to the upgrade request
//   CONNECT-ERROR <message>           handshake timeout, refused, bad 101, ...
//   WSM-ERROR <message>               error reported by the multiplexer
//   WS-ERROR <message>                WebSocket protocol error on an open connection
//   REUSE-TOKEN <status> [<body>]     --reuse-token result (101, 401 ..., ERROR <msg>)
//   API-ERROR <METHOD> <path> <status> <body>   setup failed (exit 1)
//   STATS channels=N ... rx_pause=N ...  on SIGUSR1 and at exit: channels
//                                     handled, WSM messages received by type
// Diagnostics go to stderr.
//
// Exit status: 0 after SIGTERM/SIGINT, 1 setup/API error, 2 usage error,
// 3 every connection slot ended with close code 1008, 4 every slot ended
// (only with --no-reconnect) and not all of them with 1008.

const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { WebSocketMultiplex } = require('@exposr/ws-multiplex');
const { parseArgs, oneLine } = require('./common');

const SPEC = {
    api: { type: 'string', help: 'API base URL, e.g. http://127.0.0.1:8080 (required)' },
    account: { type: 'string', help: 'account id; without it POST /v1/account creates one' },
    tunnel: { type: 'string', help: 'tunnel id; without it a random "peer-xxxxxxxx" is created' },
    target: { type: 'string', help: 'target URL: http://h:p, https://h:p, tcp://h:p, tcps://h:p (required)' },
    connections: { type: 'number', help: 'WebSocket connections to open (default: transport.max_connections)' },
    'ingress-host': { type: 'string', help: 'print this host (or URL) in READY instead of ingress.http.url' },
    'reuse-token': { type: 'bool', default: false, help: 'after the first connection opens, upgrade again with the same ws url; print REUSE-TOKEN' },
    reconnect: { type: 'bool', default: true, help: 'like exposr: reconnect after a non-1008 close, retry failed attempts with back-off (--no-reconnect: a slot ends on the first close or failure)' },
    setup: { type: 'bool', default: true, help: 'send the target / ingress-http / transport-ws PATCHes (--no-setup skips them)' },
    'delete-on-exit': { type: 'bool', default: false, help: 'DELETE the tunnel on exit if this run created it (what exposr does)' },
    'hard-exit': { type: 'bool', default: false, help: 'on SIGTERM/SIGINT drop the TCP connections without WSM CLOSE or close frame (what exposr does)' },
    'graceful-close': { type: 'bool', default: false, help: 'on a server CLOSE, deliver already received channel data to the target before ending it (stock ws-multiplex drops it; see wsm-graceful.js)' },
    insecure: { type: 'bool', default: false, help: 'do not verify the certificate of a TLS target' },
    'handshake-timeout': { type: 'number', default: 2000, help: 'WebSocket handshake timeout in ms' },
    keepalive: { type: 'number', default: 10000, help: 'WebSocket ping interval in ms (peer is dead after 2x without pong)' },
    verbose: { type: 'bool', default: false, help: 'log every channel on stderr' },
    trace: { type: 'string', help: '"ctl": log every WSM control message received on stderr; "all": DATA too' },
};
const USAGE = 'usage: node ws-peer.js --api http://127.0.0.1:PORT --target URL [--tunnel ID] [--account ID] [options]';

const opts = parseArgs(process.argv.slice(2), SPEC, USAGE);
if (opts['graceful-close']) require('./wsm-graceful').enableGracefulClose();

function usageError(msg) {
    process.stderr.write(`ws-peer: ${msg}\n${USAGE}\n`);
    process.exit(2);
}
if (!opts.api) usageError('--api is required');
if (!opts.target) usageError('--target is required');

let targetUrl;
try {
    targetUrl = new URL(opts.target);
} catch (e) {
    usageError(`bad --target: ${opts.target}`);
}
const TARGET_PROTO = targetUrl.protocol.replace(/:$/, '').toLowerCase();
const TARGET_TLS = ['https', 'wss', 'tls', 'tcps'].includes(TARGET_PROTO);
const TARGET_HOST = targetUrl.hostname.replace(/^\[(.*)\]$/, '$1');
const TARGET_PORT = targetUrl.port ? Number(targetUrl.port) : ({ http: 80, ws: 80, https: 443, wss: 443 })[TARGET_PROTO];
if (!TARGET_PORT || !TARGET_HOST) usageError(`--target needs a host and a port: ${opts.target}`);

const API_BASE = opts.api.replace(/\/+$/, '');

// ---- output --------------------------------------------------------------

const out = (line) => process.stdout.write(line + '\n');
const log = (msg) => process.stderr.write(`[ws-peer] ${msg}\n`);
const vlog = (msg) => opts.verbose && log(msg);

// ---- API -----------------------------------------------------------------

class ApiError extends Error {
    constructor(method, path, status, body) {
        super(`${method} ${path} -> ${status} ${body}`);
        this.method = method;
        this.path = path;
        this.status = status;
        this.body = body;
    }
}

function apiRequest(method, path, body, authToken) {
    return new Promise((resolve, reject) => {
        const url = new URL(API_BASE + path);
        const mod = url.protocol === 'https:' ? https : http;
        const headers = { Accept: 'application/json' };
        let data;
        if (body !== undefined) {
            data = Buffer.from(JSON.stringify(body));
            headers['Content-Type'] = 'application/json';
            headers['Content-Length'] = data.length;
        }
        if (authToken) headers.Authorization = `Bearer ${authToken}`;
        const req = mod.request(url, { method, headers, timeout: 10000 }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = text ? JSON.parse(text) : undefined;
                } catch (e) {
                    json = undefined;
                }
                resolve({ status: res.statusCode, text, json });
            });
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('API request timed out')));
        req.on('error', (err) => reject(new ApiError(method, path, 'ERROR', err.message)));
        req.end(data);
    });
}

// Like the exposr client: <= 201 is success for tunnel reads/writes, <= 204
// for token/delete.
async function api(method, path, body, { auth = true, okMax = 201 } = {}) {
    const r = await apiRequest(method, path, body, auth ? state.token : undefined);
    if (r.status > okMax) throw new ApiError(method, path, r.status, r.text);
    return r;
}

const state = {
    accountId: undefined,
    token: undefined,
    tunnelId: undefined,
    tunnel: undefined,
    autoCreated: false,
};

async function refreshToken() {
    const r = await api('GET', `/v1/account/${encodeURIComponent(state.accountId)}/token`, undefined,
        { auth: false, okMax: 204 });
    if (!r.json || typeof r.json.token !== 'string') {
        throw new ApiError('GET', '/v1/account/<id>/token', r.status, `no token in ${r.text}`);
    }
    state.token = r.json.token;
}

async function fetchTunnel() {
    const r = await api('GET', `/v1/tunnel/${state.tunnelId}`);
    state.tunnel = r.json || {};
    return state.tunnel;
}

async function setupTunnel() {
    if (opts.account) {
        state.accountId = opts.account;
    } else {
        const r = await api('POST', '/v1/account', {}, { auth: false });
        if (!r.json || !r.json.account_id) throw new ApiError('POST', '/v1/account', r.status, r.text);
        state.accountId = r.json.account_id;
    }
    out(`ACCOUNT ${state.accountId}`);
    await refreshToken();

    if (opts.tunnel) {
        state.tunnelId = opts.tunnel;
        const r = await apiRequest('GET', `/v1/tunnel/${state.tunnelId}`, undefined, state.token);
        if (r.status === 404 && r.json?.error === 'TUNNEL_NOT_FOUND') {
            await api('PUT', `/v1/tunnel/${state.tunnelId}`, {});
            state.autoCreated = true;
        } else if (r.status > 201) {
            throw new ApiError('GET', `/v1/tunnel/${state.tunnelId}`, r.status, r.text);
        }
    } else {
        state.tunnelId = `peer-${crypto.randomBytes(4).toString('hex')}`;
        await api('PUT', `/v1/tunnel/${state.tunnelId}`, {});
        state.autoCreated = true;
    }

    if (opts.setup) {
        // One PATCH per setting, in the client's order.
        const path = `/v1/tunnel/${state.tunnelId}`;
        await api('PATCH', path, { target: { url: targetUrl.href } });
        if (TARGET_PROTO.startsWith('http')) {
            await api('PATCH', path, { ingress: { http: { enabled: true } } });
        }
        await api('PATCH', path, { transport: { ws: { enabled: true } } });
    }

    await refreshToken();
    const t = await fetchTunnel();
    if (!t.transport?.ws?.url) throw new ApiError('GET', `/v1/tunnel/${state.tunnelId}`, 200, 'no transport.ws.url (No tunnel endpoint available)');
    if (opts.setup && !t.target?.url) throw new ApiError('GET', `/v1/tunnel/${state.tunnelId}`, 200, 'no target.url');
    return t;
}

// ---- WebSocket connections ---------------------------------------------

let shuttingDown = false;
const slots = [];
let nSlots = 0;
let openCount = 0;
let readyPrinted = false;
let reuseDone = false;
const targets = new Set();
const stats = { channels: 0, channelsClosed: 0, targetErrors: 0 };
// WSM messages received from the server, by type (observed passively).
const WSM_TYPES = { 1: 'data', 2: 'open', 3: 'ack', 4: 'close', 5: 'pause', 6: 'resume' };
const rx = { data: 0, open: 0, ack: 0, close: 0, pause: 0, resume: 0, other: 0, data_bytes: 0 };

function countRx(msg) {
    if (!Buffer.isBuffer(msg) || msg.length < 16) return;
    const type = WSM_TYPES[msg.readUInt16BE(2)] || 'other';
    rx[type]++;
    if (type === 'data') rx.data_bytes += msg.length - 16;
    if (opts.trace && (type !== 'data' || opts.trace === 'all')) {
        const payload = type === 'data' ? `${msg.length - 16} bytes` : oneLine(msg.subarray(16).toString('utf8'));
        log(`rx ${type.toUpperCase()} v=${msg.readUInt16BE(0)} dst=${msg.readUInt32BE(4)} src=${msg.readUInt32BE(8)} ` +
            `len=${msg.readUInt32BE(12)} ${payload}`);
    }
}

function statsLine() {
    return `STATS channels=${stats.channels} channels_closed=${stats.channelsClosed} ` +
        `target_errors=${stats.targetErrors} open_connections=${openCount} ` +
        Object.entries(rx).map(([k, v]) => `rx_${k}=${v}`).join(' ');
}

// Connect attempts are serialised, like the client's mutex.
let lockChain = Promise.resolve();
function withLock(fn) {
    const p = lockChain.then(fn);
    lockChain = p.catch(() => {});
    return p;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with one of
//   { ok: true, ws, closed }        closed: Promise<{code, reason}>
//   { ok: false, status, body }     non-101 answer
//   { ok: false, error }            anything else
function openWs(url) {
    return new Promise((resolve) => {
        let done = false;
        const finish = (r) => {
            if (!done) {
                done = true;
                resolve(r);
            }
        };
        let ws;
        try {
            ws = new WebSocket(url, { handshakeTimeout: opts['handshake-timeout'] });
        } catch (err) {
            finish({ ok: false, error: err.message });
            return;
        }
        let opened = false;
        ws.on('error', (err) => {
            // After the open this is a protocol error (bad frame, bad UTF-8, ...).
            if (opened) out(`WS-ERROR ${oneLine(err.message)}`);
            else vlog(`websocket error: ${err.message}`);
            finish({ ok: false, error: err.message });
        });
        ws.on('unexpected-response', (req, res) => {
            const chunks = [];
            let size = 0;
            let timer;
            const complete = () => {
                clearTimeout(timer);
                const body = oneLine(Buffer.concat(chunks).toString('utf8').slice(0, 2000));
                finish({ ok: false, status: res.statusCode, body });
                ws.terminate();
            };
            res.on('data', (d) => {
                if (size < 4096) chunks.push(d);
                size += d.length;
            });
            res.on('end', complete);
            res.on('close', complete);
            res.on('error', complete);
            // The reference's 401 has no body and no length: wait for the close,
            // but not forever.
            timer = setTimeout(complete, 1000);
        });
        ws.on('open', () => {
            opened = true;
            const closed = new Promise((res) => {
                ws.once('close', (code, reason) => res({ code, reason: reason.toString('utf8') }));
            });
            finish({ ok: true, ws, closed });
        });
        ws.on('close', (code) => finish({ ok: false, error: `closed before open (${code})` }));
    });
}

async function tryReuse(url) {
    const r = await openWs(url);
    if (r.ok) {
        out('REUSE-TOKEN 101');
        r.ws.terminate();
    } else if (r.status !== undefined) {
        out(`REUSE-TOKEN ${r.status} ${r.body}`);
    } else {
        out(`REUSE-TOKEN ERROR ${oneLine(r.error)}`);
    }
}

function ingressUrl() {
    const h = opts['ingress-host'];
    if (h) return h.includes('://') ? h : `http://${h}/`;
    const ing = state.tunnel?.ingress || {};
    return ing.http?.url || ing.sni?.url || '-';
}

// One connect attempt for a slot.  Holds the lock from the tunnel fetch until
// the WebSocket is open (or failed).
async function attempt(slot) {
    if (shuttingDown) return { opened: false };
    let url;
    try {
        await refreshToken();
        const t = await fetchTunnel();
        url = t.transport?.ws?.url;
    } catch (err) {
        out(`CONNECT-ERROR ${oneLine(err.message)}`);
        return { opened: false };
    }
    if (!url) {
        out('CONNECT-ERROR no transport.ws.url');
        return { opened: false };
    }
    vlog(`slot ${slot.idx}: connecting to ${url}`);
    const r = await openWs(url);
    if (!r.ok) {
        if (r.status !== undefined) out(`UPGRADE-ERROR ${r.status} ${r.body}`);
        else out(`CONNECT-ERROR ${oneLine(r.error)}`);
        return { opened: false };
    }
    if (shuttingDown) {
        r.ws.terminate();
        return { opened: false };
    }

    const ws = r.ws;
    const wsm = new WebSocketMultiplex(ws, { keepAlive: opts.keepalive, reference: `slot${slot.idx}` });
    slot.ws = ws;
    slot.wsm = wsm;
    ws.on('message', countRx);
    wsm.on('connection', (sock) => handleChannel(sock, slot));
    wsm.on('error', (err) => out(`WSM-ERROR ${oneLine(err.message)}`));
    wsm.on('close', () => {
        // The multiplexer also ends on ping timeout or a bad protocol version
        // while the WebSocket stays open; drop the connection then.
        if (!shuttingDown && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
            log(`slot ${slot.idx}: multiplexer ended, dropping the WebSocket`);
            ws.terminate();
        }
    });

    openCount++;
    out(`CONNECTED ${openCount}/${nSlots}`);
    if (!readyPrinted && openCount === nSlots) {
        readyPrinted = true;
        out(`READY ${state.tunnelId} ${ingressUrl()}`);
    }

    const closed = r.closed.then((c) => {
        openCount--;
        slot.ws = undefined;
        slot.wsm = undefined;
        if (!shuttingDown) out(`CLOSED ${c.code} ${oneLine(c.reason)}`.trimEnd());
        else vlog(`slot ${slot.idx}: closed ${c.code} ${c.reason}`);
        return c;
    });

    if (opts['reuse-token'] && !reuseDone) {
        reuseDone = true;
        await tryReuse(url);
    }
    return { opened: true, closed };
}

async function runSlot(slot) {
    let failures = 0;
    while (!shuttingDown) {
        const res = await withLock(() => attempt(slot));
        if (shuttingDown) return;
        if (!res.opened) {
            if (!opts.reconnect) return endSlot(slot, undefined);
            failures++;
            await sleep(Math.min(1000 * failures, 5000));
            continue;
        }
        failures = 0;
        const { code } = await res.closed;
        if (shuttingDown) return;
        if (code === 1008) return endSlot(slot, 1008);
        if (!opts.reconnect) return endSlot(slot, code);
        log(`slot ${slot.idx}: closed with ${code}, reconnecting`);
    }
}

function endSlot(slot, code) {
    slot.ended = true;
    slot.endCode = code;
    log(`slot ${slot.idx}: gave up${code !== undefined ? ` (close code ${code})` : ''}`);
    if (slots.every((s) => s.ended)) {
        const all1008 = slots.every((s) => s.endCode === 1008);
        log(all1008 ? 'tunnel disconnected (all connections closed with 1008)' : 'all connections ended');
        finalExit(all1008 ? 3 : 4);
    }
}

// ---- channels ------------------------------------------------------------

function connectTarget() {
    if (TARGET_TLS) {
        return tls.connect({
            host: TARGET_HOST,
            port: TARGET_PORT,
            servername: net.isIP(TARGET_HOST) ? undefined : TARGET_HOST,
            rejectUnauthorized: !opts.insecure,
        });
    }
    return net.connect({ host: TARGET_HOST, port: TARGET_PORT });
}

// One channel opened by the server: connect it to the target and pipe both
// ways.  stream.pipe() gives backpressure in both directions: the channel's
// readable side sends PAUSE/RESUME when the target is slow, and a PAUSE from
// the server corks the channel so target.pipe(sock) stops reading the target.
function handleChannel(sock, slot) {
    const id = ++stats.channels;
    const target = connectTarget();
    targets.add(target);
    let targetClosed = false;
    vlog(`ch${id} (slot ${slot.idx}): opened`);

    target.on('error', (err) => {
        stats.targetErrors++;
        vlog(`ch${id}: target error: ${err.code || err.message}`);
    });
    sock.on('error', (err) => vlog(`ch${id}: channel error: ${err.message}`));
    target.setNoDelay?.(true);

    sock.pipe(target);
    target.pipe(sock);

    target.on('close', (hadError) => {
        targetClosed = true;
        targets.delete(target);
        // Target finished normally: pipe() has called sock.end(); send the WSM
        // CLOSE only after every byte was handed to the WebSocket (no tail loss).
        if (!hadError && !sock.destroyed && !sock.writableFinished) {
            sock.once('finish', () => sock.destroy());
        } else {
            sock.destroy();
        }
    });

    // The server closed the channel (WSM CLOSE, or the WebSocket went away):
    // flush what was already written to the target, then let it go.
    sock.on('close', () => {
        stats.channelsClosed++;
        vlog(`ch${id}: closed`);
        if (!targetClosed) {
            target.end();
            target.resume();
            setTimeout(() => target.destroy(), 2000).unref();
        }
    });
}

// ---- shutdown ------------------------------------------------------------

let exiting = false;

async function finalExit(code) {
    if (exiting) return;
    exiting = true;
    shuttingDown = true;
    if (opts['delete-on-exit'] && state.autoCreated && state.tunnelId) {
        try {
            await api('DELETE', `/v1/tunnel/${state.tunnelId}`, undefined, { okMax: 204 });
            log(`deleted tunnel ${state.tunnelId}`);
        } catch (err) {
            log(`delete failed: ${err.message}`);
        }
    }
    out(statsLine());
    log(`exit ${code}`);
    process.exit(code);
}

async function shutdown(sig) {
    if (shuttingDown) {
        if (!exiting) process.exit(0);
        return;
    }
    shuttingDown = true;
    log(`${sig}: closing`);
    const open = slots.filter((s) => s.ws);
    if (opts['hard-exit']) {
        for (const s of open) s.ws.terminate();
    } else {
        // WSM CLOSE for every open channel, then a 1000 close frame.
        await Promise.all(open.map((s) => Promise.race([s.wsm?.destroy(), sleep(500)])));
        await Promise.all(open.map((s) => new Promise((resolve) => {
            const ws = s.ws;
            if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
            const t = setTimeout(() => { ws.terminate(); resolve(); }, 1000);
            ws.once('close', () => { clearTimeout(t); resolve(); });
            try {
                ws.close(1000, 'client exit');
            } catch (err) {
                ws.terminate();
            }
        })));
    }
    for (const t of targets) t.destroy();
    await finalExit(0);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGUSR1', () => out(statsLine()));

// ---- main ----------------------------------------------------------------

(async () => {
    let t;
    try {
        t = await setupTunnel();
    } catch (err) {
        if (shuttingDown) return;
        if (err instanceof ApiError) out(`API-ERROR ${err.method} ${err.path} ${err.status} ${oneLine(err.body)}`);
        else out(`API-ERROR ${oneLine(err.message)}`);
        process.exit(1);
    }
    if (shuttingDown) return;
    nSlots = opts.connections ?? t.transport?.max_connections ?? 2;
    if (!(nSlots >= 1)) usageError(`bad number of connections: ${nSlots}`);
    log(`tunnel ${state.tunnelId}: ${nSlots} connection(s) to ${t.transport.ws.url.replace(/\?t=.*/, '?t=...')}, target ${targetUrl.href}`);
    for (let i = 0; i < nSlots; i++) slots.push({ idx: i + 1, ended: false, endCode: undefined });
    for (const s of slots) runSlot(s).catch((err) => {
        log(`slot ${s.idx}: ${err.stack || err}`);
        endSlot(s, undefined);
    });
})();
