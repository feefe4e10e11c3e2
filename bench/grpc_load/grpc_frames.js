// Helpers for bench/grpc_load/run, so that the bash script needs no protobuf:
//   node grpc_frames.js requests DIR USERNAME TTL
//       writes DIR/app.bin and DIR/user.bin: the gRPC length-prefixed frames
//       (1 byte flag, 4 bytes big-endian length, message) of a
//       GetAppTokenRequest and a GetUserTokenRequest, the bytes h2load posts.
//   node grpc_frames.js verify app|user RESPONSE_FILE EXPECTED_USER_ID APP_CERT
//       decodes a response body (one gRPC frame), checks that the token starts
//       with "007", parses and verifies it with agora-token, and prints
//       `token_ok bytes=N expire_in=S user_id=...`; exits 1 on any mismatch.
//   node grpc_frames.js percentiles LOGFILE...
//       reads h2load --log-file lines (start_us TAB status TAB duration_us),
//       prints `count=N ok=N p50_ms=X p99_ms=Y`.
// Run with NODE_PATH=<repo>/node_modules.
'use strict'

const fs = require('fs')
const path = require('path')
const protobuf = require('protobufjs')

const repo = path.resolve(__dirname, '..', '..')

function loadTypes() {
    const root = new protobuf.Root()
    // google/protobuf/timestamp.proto is bundled with protobufjs ("common").
    root.resolvePath = (origin, target) =>
        target.startsWith('google/protobuf/') ? target : path.join(repo, 'proto', target)
    root.loadSync('chattoken/v1/token_service.proto', { keepCase: true })
    root.resolveAll()
    const t = name => root.lookupType('chattoken.v1.' + name)
    return {
        app: [t('GetAppTokenRequest'), t('GetAppTokenResponse')],
        user: [t('GetUserTokenRequest'), t('GetUserTokenResponse')],
    }
}

function frame(message) {
    const out = Buffer.alloc(5 + message.length)
    out.writeUInt8(0, 0)
    out.writeUInt32BE(message.length, 1)
    Buffer.from(message).copy(out, 5)
    return out
}

function writeRequests(dir, username, ttl) {
    const types = loadTypes()
    const app = types.app[0]
    const user = types.user[0]
    fs.writeFileSync(path.join(dir, 'app.bin'),
        frame(app.encode(app.create({ ttl_seconds: ttl })).finish()))
    fs.writeFileSync(path.join(dir, 'user.bin'),
        frame(user.encode(user.create({ username, ttl_seconds: ttl })).finish()))
}

function fail(msg) {
    console.error('verify: ' + msg)
    process.exit(1)
}

function verify(kind, file, expectedUser, cert) {
    const { AccessToken2 } = require('agora-token/src/AccessToken2')
    const body = fs.readFileSync(file)
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
        fail(`${file} is not one uncompressed gRPC frame (${body.length} bytes)`)
    }
    const type = loadTypes()[kind][1]
    const msg = type.toObject(type.decode(body.subarray(5)), { longs: Number, defaults: true })
    if (!msg.token.startsWith('007')) {
        fail('token does not start with 007')
    }
    const tok = new AccessToken2()
    if (!tok.from_string(msg.token) || !tok.verifySignature(cert)) {
        fail('agora-token cannot parse or verify the token')
    }
    const chat = tok.services.filter(s => s.service_type() === 5)[0] // ServiceChat
    if (chat === undefined) {
        fail('token has no Chat service')
    }
    const userId = String(chat.__user_id || '') // agora-token keeps it as a Buffer after parsing
    if (kind === 'user' && (userId !== expectedUser || msg.user_id !== expectedUser)) {
        fail(`user id ${userId} / ${msg.user_id}, expected ${expectedUser}`)
    }
    const expireIn = Number(msg.expire_time ? msg.expire_time.seconds : 0) - Math.floor(Date.now() / 1000)
    if (expireIn < 3500 || expireIn > 3700) {
        fail(`expire_time is ${expireIn} s from now, expected about 3600`)
    }
    console.log(`token_ok bytes=${body.length} token_chars=${msg.token.length} ` +
        `expire_in=${expireIn} user_id=${kind === 'user' ? userId : '-'}`)
}

// Nearest-rank percentiles over the successful (HTTP 200) requests.
function percentiles(files) {
    const d = []
    let count = 0
    for (const f of files) {
        for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
            const cols = line.split('\t')
            if (cols.length < 3) {
                continue
            }
            count++
            if (cols[1] === '200') {
                d.push(Number(cols[2]))
            }
        }
    }
    d.sort((a, b) => a - b)
    const rank = p => (d.length === 0 ? NaN : d[Math.min(d.length - 1, Math.ceil(p * d.length) - 1)] / 1000)
    console.log(`count=${count} ok=${d.length} p50_ms=${rank(0.5).toFixed(3)} p99_ms=${rank(0.99).toFixed(3)}`)
}

const [cmd, ...rest] = process.argv.slice(2)
if (cmd === 'requests') {
    writeRequests(rest[0], rest[1], Number(rest[2]))
} else if (cmd === 'verify') {
    verify(rest[0], rest[1], rest[2], rest[3])
} else if (cmd === 'percentiles') {
    percentiles(rest)
} else {
    console.error('usage: grpc_frames.js requests DIR USER TTL | verify app|user FILE USER CERT | percentiles LOG...')
    process.exit(2)
}
