'use strict';
// Shared helpers for the test tools in tests/peer (Node >= 18, CommonJS).

const os = require('node:os');

// A test script that stops reading our stdout (e.g. `| head -1`) must not
// crash the tool with EPIPE.
process.stdout.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
});
const { Readable } = require('node:stream');

// ---- command line -------------------------------------------------------
//
// spec: { name: { type: 'string' | 'number' | 'bool', default, help } }
// Accepts --name value, --name=value, --flag, --no-flag.  Unknown options and
// missing values are usage errors (exit 2).
function parseArgs(argv, spec, usage) {
    const opts = {};
    for (const [k, v] of Object.entries(spec)) {
        if (v.default !== undefined) opts[k] = v.default;
    }
    const positional = [];
    const die = (msg) => {
        process.stderr.write(`error: ${msg}\n${usage ? usageText(usage, spec) : ''}`);
        process.exit(2);
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '-h' || a === '--help') {
            process.stdout.write(usageText(usage, spec));
            process.exit(0);
        }
        if (!a.startsWith('--')) {
            positional.push(a);
            continue;
        }
        let name = a.slice(2);
        let value;
        const eq = name.indexOf('=');
        if (eq >= 0) {
            value = name.slice(eq + 1);
            name = name.slice(0, eq);
        }
        let s = spec[name];
        if (!s && name.startsWith('no-') && spec[name.slice(3)]?.type === 'bool' && value === undefined) {
            opts[name.slice(3)] = false;
            continue;
        }
        if (!s) die(`unknown option --${name}`);
        if (s.type === 'bool') {
            if (value === undefined) opts[name] = true;
            else opts[name] = !/^(0|false|no|off)$/i.test(value);
            continue;
        }
        if (value === undefined) {
            if (i + 1 >= argv.length) die(`option --${name} needs a value`);
            value = argv[++i];
        }
        if (s.type === 'number') {
            const n = Number(value);
            if (!Number.isFinite(n)) die(`option --${name}: not a number: ${value}`);
            opts[name] = n;
        } else if (s.multi) {
            (opts[name] = opts[name] || []).push(value);
        } else {
            opts[name] = value;
        }
    }
    opts._ = positional;
    return opts;
}

function usageText(usage, spec) {
    let out = `${usage}\n\nOptions:\n`;
    for (const [k, v] of Object.entries(spec)) {
        const arg = v.type === 'bool' ? '' : (v.type === 'number' ? ' N' : ' VALUE');
        const def = v.default !== undefined && v.type !== 'bool' ? ` (default ${v.default})` : '';
        out += `  --${k}${arg}`.padEnd(28) + ` ${v.help || ''}${def}\n`;
    }
    return out;
}

// ---- deterministic pseudo-random bytes ----------------------------------
//
// xorshift32 over 32-bit little-endian words.  The byte stream for (seed, n)
// is the first n bytes of the infinite stream for seed, whatever the chunking,
// so /bytes, /bytes-chunked and /slow agree, and `node target.js --gen-bytes N
// --seed S` can reproduce a body locally.
const LITTLE_ENDIAN = os.endianness() === 'LE';

class PrngState {
    constructor(seed) {
        let s = (Math.imul((Number(seed) >>> 0) ^ 0x5bd1e995, 0x9e3779b1) + 0x7f4a7c15) >>> 0;
        this.s = s || 0x1234567;
    }
    // fill a buffer whose length is a multiple of 4
    fill(buf) {
        const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
        let x = this.s;
        for (let i = 0; i < words.length; i++) {
            x ^= x << 13; x >>>= 0;
            x ^= x >>> 17;
            x ^= x << 5; x >>>= 0;
            words[i] = x;
        }
        this.s = x;
        if (!LITTLE_ENDIAN) buf.swap32();
        return buf;
    }
}

const PRNG_CHUNK = 64 * 1024;

// Readable stream of n deterministic bytes (seed), in pieces of `chunk` bytes
// (multiple of 4, except the last).  Respects backpressure (pull based).
// delayMs > 0 waits that long before every piece after the first.
function prngStream(n, seed, chunk = PRNG_CHUNK, delayMs = 0) {
    chunk = Math.max(4, chunk & ~3);
    const st = new PrngState(seed);
    let left = n;
    let first = true;
    let timer;
    return new Readable({
        highWaterMark: chunk,
        read() {
            if (left <= 0) {
                this.push(null);
                return;
            }
            const emit = () => {
                timer = undefined;
                const len = Math.min(chunk, left);
                const buf = st.fill(Buffer.allocUnsafe((len + 3) & ~3));
                left -= len;
                this.push(len === buf.length ? buf : buf.subarray(0, len));
                if (left <= 0) this.push(null);
            };
            if (delayMs > 0 && !first) timer = setTimeout(emit, delayMs);
            else emit();
            first = false;
        },
        destroy(err, cb) {
            clearTimeout(timer);
            cb(err);
        },
    });
}

function oneLine(s) {
    return String(s).replace(/\r?\n/g, '\\n');
}

module.exports = { parseArgs, usageText, PrngState, prngStream, oneLine };
