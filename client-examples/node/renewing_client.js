#!/usr/bin/env node
// A chat-tokend client on @grpc/grpc-js: gets a user token, then keeps it
// fresh by renewing it on a timer before it expires (by default at 80% of
// its lifetime), the way a chat backend holds a token for a long-lived
// session. Each token is printed as one JSON line on stdout; errors go to
// stderr. The API key comes from the environment, never from argv.
//
// usage: node renewing_client.js [--target ADDR] [--ttl SECONDS]
//          [--renew-at FRACTION] [--renewals N] USERNAME
'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const KEY_ENV = 'CHAT_TOKEND_API_KEY';
const CALL_TIMEOUT_MS = 10000;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
// Statuses after which renewing the same token again cannot succeed: get a
// new one with GetUserToken instead (e.g. it expired past the renew grace,
// or was signed with a certificate the server no longer holds).
const RENEW_GIVE_UP = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION]);
// Statuses worth retrying after a pause: the server or the network may be
// back by then.
const TRANSIENT = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED]);

function usage(message) {
  if (message) process.stderr.write(`renewing_client: ${message}\n`);
  process.stderr.write(
    'usage: node renewing_client.js [--target ADDR] [--ttl SECONDS] [--renew-at FRACTION]\n' +
    '         [--renewals N] USERNAME\n' +
    '  --target ADDR        host:port or unix:/path (default 127.0.0.1:50051)\n' +
    '  --ttl SECONDS        token lifetime; 0 = the server default (default 0)\n' +
    '  --renew-at FRACTION  renew after this part of the lifetime (default 0.8)\n' +
    '  --renewals N         exit after N renewals (default: run until stopped)\n' +
    `environment: ${KEY_ENV} (sent as 'authorization: Bearer KEY'; unset: none)\n`);
  process.exit(64);
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        target: { type: 'string', default: '127.0.0.1:50051' },
        ttl: { type: 'string', default: '0' },
        'renew-at': { type: 'string', default: '0.8' },
        renewals: { type: 'string' },
        proto: { type: 'string', default: path.join(__dirname, '..', '..', 'proto') },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    usage(e.message);
  }
  const { values, positionals } = parsed;
  if (values.help) usage();
  if (positionals.length !== 1) usage('expected one USERNAME');
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 86400) usage('--ttl: 0..86400 seconds');
  const renewAt = Number(values['renew-at']);
  if (!(renewAt > 0 && renewAt < 1)) usage('--renew-at: a fraction between 0 and 1');
  let renewals = Infinity;
  if (values.renewals !== undefined) {
    renewals = Number(values.renewals);
    if (!Number.isInteger(renewals) || renewals < 0) usage('--renewals: a count');
  }
  return { target: values.target, ttl, renewAt, renewals, protoDir: values.proto,
    username: positionals[0] };
}

function loadService(protoDir) {
  const definition = protoLoader.loadSync('chattoken/v1/token_service.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).chattoken.v1.TokenService;
}

function authMetadata() {
  const metadata = new grpc.Metadata();
  const key = process.env[KEY_ENV];
  if (key) metadata.set('authorization', `Bearer ${key}`);
  return metadata;
}

function expireMs(response) {
  const t = response.expire_time;
  return t ? t.seconds * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + CALL_TIMEOUT_MS);
    client[method](request, authMetadata(), { deadline }, (err, response) => {
      if (err) reject(err);
      else resolve(response);
    });
  });
}

function sleep(ms, state) {
  return new Promise((resolve) => {
    state.timer = setTimeout(resolve, ms);
  });
}

function print(event, response) {
  // the token is printed on purpose: handing it on is this program's job
  process.stdout.write(JSON.stringify({
    event,
    token: response.token,
    expire_time: new Date(expireMs(response)).toISOString(),
    user_id: response.user_id,
  }) + '\n');
}

function describe(err) {
  const name = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || err.code;
  return `${name}: ${err.details || err.message}`;
}

async function run(opts, client, state) {
  let current = await call(client, 'GetUserToken', { username: opts.username,
    ttl_seconds: opts.ttl });
  print('issued', current);
  let renewed = 0;
  while (renewed < opts.renewals) {
    const left = expireMs(current) - Date.now();
    await sleep(Math.max(200, Math.floor(left * opts.renewAt)), state);
    let retryMs = RETRY_FIRST_MS;
    for (;;) {
      const renewing = Date.now() < expireMs(current);
      try {
        if (!renewing) {
          // too late to renew: start over, as a new session would
          current = await call(client, 'GetUserToken', { username: opts.username,
            ttl_seconds: opts.ttl });
          print('issued', current);
        } else {
          current = await call(client, 'RenewToken', { token: current.token,
            ttl_seconds: opts.ttl });
          print('renewed', current);
        }
        break;
      } catch (err) {
        process.stderr.write(`renewing_client: ${describe(err)}\n`);
        err.reported = true;
        if (renewing && RENEW_GIVE_UP.has(err.code)) {
          current = { ...current, expire_time: { seconds: 0, nanos: 0 } };
          continue;
        }
        if (!TRANSIENT.has(err.code)) {
          throw err; // a bad key or username: a retry will not fix it
        }
        // back off, but not past the expiry, so the next try can still renew
        const untilExpiry = expireMs(current) - Date.now();
        await sleep(untilExpiry > 0 ? Math.max(100, Math.min(retryMs, untilExpiry)) : retryMs, state);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
    renewed++;
  }
}

function main() {
  const opts = parseOptions();
  const TokenService = loadService(opts.protoDir);
  const client = new TokenService(opts.target, grpc.credentials.createInsecure());
  const state = { timer: null };
  const stop = () => {
    clearTimeout(state.timer);
    client.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  run(opts, client, state).then(() => {
    client.close();
  }, (err) => {
    if (err.code === undefined) process.stderr.write(`renewing_client: ${err.message}\n`);
    else if (!err.reported) process.stderr.write(`renewing_client: ${describe(err)}\n`);
    client.close();
    process.exitCode = err.code > 0 && err.code <= 16 ? err.code : 1;
  });
}

main();
