#!/usr/bin/env node
'use strict';
// wsclient.js - WebSocket echo client for the exposrd integration tests.
//
// Connects to --url (optionally with a Host header override, to go through
// the HTTP ingress as <tunnel>.localhost), prints the first message the
// server sends on its own line, then sends --count messages and checks that
// each one comes back unchanged and in order.
//
// stdout:  <first message>          (verbatim, newlines escaped as \n)
//          OK <count>               all echoes verified
//          UPGRADE-ERROR <status> <body>   non-101 answer
//          FAIL <reason>            anything else
// Exit status: 0 success, 1 failure, 2 usage error.

const crypto = require('node:crypto');
const WebSocket = require('ws');
const { parseArgs, oneLine } = require('./common');

const SPEC = {
    url: { type: 'string', help: 'WebSocket URL, e.g. ws://127.0.0.1:8080/ws (required)' },
    host: { type: 'string', help: 'Host header to send, e.g. my-tunnel.localhost' },
    header: { type: 'string', multi: true, help: 'extra request header "Name: value" (repeatable)' },
    count: { type: 'number', default: 5, help: 'messages to send and verify' },
    size: { type: 'number', default: 0, help: '0: short text messages; N > 0: binary messages of N random bytes' },
    sequential: { type: 'bool', default: false, help: 'wait for each echo before sending the next message' },
    'expect-first': { type: 'string', help: 'fail unless the first message equals this text' },
    'no-first': { type: 'bool', default: false, help: 'do not wait for a first message (plain echo servers)' },
    timeout: { type: 'number', default: 10000, help: 'overall timeout in ms' },
};
const USAGE = 'usage: node wsclient.js --url ws://127.0.0.1:PORT/ws [--host TUNNEL.localhost] [--count N] [--size BYTES]';

const opts = parseArgs(process.argv.slice(2), SPEC, USAGE);
if (!opts.url) {
    process.stderr.write(`wsclient: --url is required\n${USAGE}\n`);
    process.exit(2);
}

const out = (line) => process.stdout.write(line + '\n');
let finished = false;
function finish(code, line) {
    if (finished) return;
    finished = true;
    if (line) out(line);
    try {
        if (ws.readyState === WebSocket.OPEN) {
            ws.close(1000);
            const t = setTimeout(() => process.exit(code), 500);
            ws.once('close', () => {
                clearTimeout(t);
                process.exit(code);
            });
            return;
        }
        ws.terminate();
    } catch (e) {
        // ignore
    }
    process.exit(code);
}

const headers = {};
if (opts.host) headers.Host = opts.host;
for (const h of opts.header || []) {
    const i = h.indexOf(':');
    if (i <= 0) {
        process.stderr.write(`wsclient: bad --header ${h}\n`);
        process.exit(2);
    }
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

setTimeout(() => finish(1, `FAIL timeout after ${opts.timeout} ms (${received}/${opts.count} echoes)`), opts.timeout).unref();

const ws = new WebSocket(opts.url, { headers, handshakeTimeout: Math.min(opts.timeout, 10000), perMessageDeflate: false });
const sent = [];
let received = 0;
let gotFirst = opts['no-first'];

function makeMessage(i) {
    if (opts.size > 0) return crypto.randomBytes(opts.size);
    return `msg ${i} ${crypto.randomBytes(6).toString('hex')}`;
}

function sendNext() {
    const i = sent.length;
    const m = makeMessage(i);
    sent.push(m);
    ws.send(m, { binary: opts.size > 0 });
}

function start() {
    if (opts.count <= 0) return finish(0, 'OK 0');
    if (opts.sequential) sendNext();
    else for (let i = 0; i < opts.count; i++) sendNext();
}

ws.on('unexpected-response', (req, res) => {
    const chunks = [];
    const done = () => finish(1, `UPGRADE-ERROR ${res.statusCode} ${oneLine(Buffer.concat(chunks).toString('utf8').slice(0, 2000))}`);
    res.on('data', (d) => chunks.push(d));
    res.on('end', done);
    res.on('close', done);
    res.on('error', done);
    setTimeout(done, 1000).unref();
});
ws.on('error', (err) => finish(1, `FAIL ${oneLine(err.message)}`));
ws.on('close', (code, reason) => finish(1, `FAIL closed ${code} ${oneLine(reason.toString())} (${received}/${opts.count} echoes)`));
ws.on('open', () => {
    if (gotFirst) start();
});
ws.on('message', (data, isBinary) => {
    if (!gotFirst) {
        gotFirst = true;
        const text = isBinary ? data.toString('hex') : data.toString('utf8');
        out(oneLine(text));
        if (opts['expect-first'] !== undefined && text !== opts['expect-first']) {
            return finish(1, `FAIL first message ${JSON.stringify(text)}, expected ${JSON.stringify(opts['expect-first'])}`);
        }
        return start();
    }
    const want = sent[received];
    if (want === undefined) return finish(1, 'FAIL unexpected extra message');
    const ok = opts.size > 0 ? (isBinary && Buffer.compare(data, want) === 0) : (!isBinary && data.toString('utf8') === want);
    if (!ok) return finish(1, `FAIL echo ${received} differs`);
    received++;
    if (received === opts.count) return finish(0, `OK ${received}`);
    if (opts.sequential) sendNext();
});
