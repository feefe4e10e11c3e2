// The agora-token side of token_bench: the same four measurements (Chat app
// token build, user token build, parse+verify of a user token, RTC token build
// with RtcTokenBuilder.buildTokenWithUid, publisher) on one thread,
// as medians of fixed time windows. token_bench runs it in the same run and
// reads the last line. Run with NODE_PATH=<repo>/node_modules.
'use strict'

const { ChatTokenBuilder } = require('agora-token/src/ChatTokenBuilder')
const { AccessToken2 } = require('agora-token/src/AccessToken2')
const { RtcTokenBuilder, RtcRole } = require('agora-token')

const APP_ID = '970CA35de60c44645bbae8a215061b33'
const APP_CERT = '5CFd2fd1755d40ecb72977518be15d3b'
const TTL = 3600
const USER_COUNT = 1024

function arg(name, fallback) {
    const i = process.argv.indexOf(name)
    return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback
}

const runs = arg('--runs', 5)
const windowMs = arg('--window-ms', 300)

// the same user ids as token_bench.c: "user-%07d" of i * 7919
const users = []
for (let i = 0; i < USER_COUNT; i++) {
    users.push('user-' + String(i * 7919).padStart(7, '0'))
}
const tokens = users.map(u => ChatTokenBuilder.buildUserToken(APP_ID, APP_CERT, u, TTL))

let sink = 0
const ops = {
    app: i => {
        sink += ChatTokenBuilder.buildAppToken(APP_ID, APP_CERT, TTL).length
    },
    user: i => {
        sink += ChatTokenBuilder.buildUserToken(APP_ID, APP_CERT, users[i % USER_COUNT], TTL).length
    },
    parse: i => {
        const t = new AccessToken2()
        if (!t.from_string(tokens[i % USER_COUNT]) || !t.verifySignature(APP_CERT)) {
            throw new Error('agora-token failed to parse or verify its own token')
        }
        sink += t.expire
    },
    // as token_bench.c: channel = the user id, uid = index + 1
    rtc: i => {
        const k = i % USER_COUNT
        sink += RtcTokenBuilder.buildTokenWithUid(APP_ID, APP_CERT, users[k], k + 1,
            RtcRole.PUBLISHER, TTL, TTL).length
    },
}

// Operations per second over one window; the clock is read every 64 ops,
// as in token_bench.c.
function measure(op, ms) {
    let done = 0
    const start = process.hrtime.bigint()
    let elapsed
    do {
        for (let j = 0; j < 64; j++) {
            op(done++)
        }
        elapsed = Number(process.hrtime.bigint() - start) / 1e9
    } while (elapsed < ms / 1000)
    return done / elapsed
}

function median(op) {
    measure(op, windowMs / 4) // warm up the JIT
    const rates = []
    for (let r = 0; r < runs; r++) {
        rates.push(measure(op, windowMs))
    }
    rates.sort((a, b) => a - b)
    return rates[Math.floor(runs / 2)]
}

const app = median(ops.app)
const user = median(ops.user)
const parse = median(ops.parse)
const rtc = median(ops.rtc)
if (sink === 0) {
    throw new Error('no work done')
}
console.log(`agora_token app_build_per_s=${app.toFixed(0)} user_build_per_s=${user.toFixed(0)} ` +
    `parse_verify_per_s=${parse.toFixed(0)} rtc_build_per_s=${rtc.toFixed(0)}`)
