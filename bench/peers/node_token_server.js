// The token server a Node user would write instead of chat-tokend: the same
// TokenService contract (GetAppToken, GetUserToken in username mode) on
// @grpc/grpc-js + @grpc/proto-loader, tokens from the official agora-token
// package. One Node process, plaintext, loopback. bench/grpc_load/run starts it
// as the peer that chat-tokend's figures are compared against.
//
// Run: NODE_PATH=<repo>/node_modules node bench/peers/node_token_server.js [--port N]
// Prints one line `{"event":"listening","message":"127.0.0.1:PORT"}` on stdout
// once it serves (port 0 = any free port, the default).
'use strict'

const path = require('path')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')
const { ChatTokenBuilder } = require('agora-token/src/ChatTokenBuilder')

// The bench's demo app, as in chat-tokend's bench config; overridable like
// chat-tokend's own environment overrides.
const APP_ID = process.env.CHAT_TOKEN_APP_ID || '970CA35de60c44645bbae8a215061b33'
const APP_CERT = process.env.CHAT_TOKEN_APP_CERTIFICATE || '5CFd2fd1755d40ecb72977518be15d3b'
const DEFAULT_TTL = 3600
const MAX_TTL = 86400
const USERNAME = /^[A-Za-z0-9_.-]{1,64}$/

function arg(name, fallback) {
    const i = process.argv.indexOf(name)
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback
}

const repo = path.resolve(__dirname, '..', '..')
const definition = protoLoader.loadSync('chattoken/v1/token_service.proto', {
    includeDirs: [path.join(repo, 'proto'), '/usr/include'],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
})
const { TokenService } = grpc.loadPackageDefinition(definition).chattoken.v1

// 0 = default; above the maximum is the caller's error, as in chat-tokend.
function ttlOf(request) {
    const ttl = request.ttl_seconds || 0
    if (ttl > MAX_TTL) {
        const err = new Error(`ttl_seconds must be at most ${MAX_TTL}`)
        err.code = grpc.status.INVALID_ARGUMENT
        throw err
    }
    return ttl === 0 ? DEFAULT_TTL : ttl
}

function expireTime(ttl) {
    return { seconds: Math.floor(Date.now() / 1000) + ttl, nanos: 0 }
}

const handlers = {
    GetAppToken(call, callback) {
        try {
            const ttl = ttlOf(call.request)
            callback(null, {
                token: ChatTokenBuilder.buildAppToken(APP_ID, APP_CERT, ttl),
                expire_time: expireTime(ttl),
            })
        } catch (err) {
            callback(err)
        }
    },
    GetUserToken(call, callback) {
        try {
            const name = call.request.username
            if (!USERNAME.test(name)) {
                callback({
                    code: grpc.status.INVALID_ARGUMENT,
                    message: 'username must be 1..64 characters of a-z A-Z 0-9 _ - .',
                })
                return
            }
            const ttl = ttlOf(call.request)
            const userId = name.toLowerCase()
            callback(null, {
                token: ChatTokenBuilder.buildUserToken(APP_ID, APP_CERT, userId, ttl),
                expire_time: expireTime(ttl),
                user_id: userId,
                registered: false,
            })
        } catch (err) {
            callback(err)
        }
    },
    RenewToken(call, callback) {
        callback({ code: grpc.status.UNIMPLEMENTED, message: 'not part of the benchmark peer' })
    },
}

const server = new grpc.Server()
server.addService(TokenService.service, handlers)
server.bindAsync(`127.0.0.1:${arg('--port', '0')}`, grpc.ServerCredentials.createInsecure(),
    (err, port) => {
        if (err) {
            console.error(err.message)
            process.exit(1)
        }
        console.log(JSON.stringify({ event: 'listening', message: `127.0.0.1:${port}` }))
    })

function stop() {
    server.tryShutdown(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
