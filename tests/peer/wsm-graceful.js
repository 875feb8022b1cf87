'use strict';
// Optional patch for @exposr/ws-multiplex 1.4.0 (test tooling only).
//
// Stock behaviour: when the peer sends WSM CLOSE, WebSocketMultiplexSocket
// calls end() and then destroy(), so bytes already received but not yet read
// by the consumer (the stream was paused by backpressure) are dropped.  The
// real exposr client has this tail-loss bug; transports.md §2.5 asks the C
// server not to copy it.
//
// enableGracefulClose() changes every WebSocketMultiplexSocket so that a peer
// CLOSE ends the readable side *after* the buffered data (push(null) once the
// internal queue is drained) and silently drops later writes (the peer will
// not accept them).  The stream is then destroyed by autoDestroy once its
// consumer has read everything.  Used by selftest/fake-server.js always and by
// ws-peer.js with --graceful-close.

const { WebSocketMultiplexSocket } = require('@exposr/ws-multiplex');

function enableGracefulClose() {
    const P = WebSocketMultiplexSocket.prototype;
    if (P.__exposrdGraceful) return;
    if (typeof P.flush !== 'function' || typeof P.onClose !== 'function') {
        throw new Error('wsm-graceful: unexpected @exposr/ws-multiplex internals (expected 1.4.0)');
    }
    P.__exposrdGraceful = true;
    const origFlush = P.flush;
    const origOnClose = P.onClose;

    const pushEof = (sock) => {
        if (!sock.__eofPushed && sock.readBufferSize === 0) {
            sock.__eofPushed = true;
            sock.push(null);
        }
    };

    P.flush = function flush() {
        origFlush.call(this);
        if (this.__peerClosed) pushEof(this);
    };

    P.onClose = function onClose(dstChannel) {
        // Never opened (open refused / timed out): nothing buffered, keep the
        // stock behaviour.
        if (this.readyState !== 'open') return origOnClose.call(this, dstChannel);
        this.__peerClosed = true;
        // The channel is gone on the multiplexer side: writes can no longer
        // be delivered, drop them instead of failing the stream.
        this.writeBuffer = [];
        this.writer = (channel, data, callback) => process.nextTick(callback);
        pushEof(this);
        if (!this.writableEnded) this.end();
    };
}

module.exports = { enableGracefulClose };
