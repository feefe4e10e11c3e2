// Checks RTC and RTM tokens that chat-tokend returned against the official
// npm builder `agora-token`: the token parses and verifies there, and its
// AccessToken2 builds the same payload byte for byte (signature included)
// from what the test asked for (channel, account, role, privilege ttl,
// with_rtm; RTM user id), with the issue time and salt read from the token.
// Payloads are compared inflated: zlib's compressed bytes may differ. Privileges are added the way
// agora-token's RtcTokenBuilder2 / RtmTokenBuilder2 add them.
// stdin: {"checks": [{token, app_id, certificate, kind: "rtc"|"rtm", ttl,
//          channel?, account?, role?: "publisher"|"subscriber",
//          privilege_ttl?, with_rtm?, user_id?}]}
// stdout: [{issue_ts, expire, salt}]; exit 1 naming the failing check.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const zlib = require('node:zlib');
const { AccessToken2, ServiceRtc, ServiceRtm } = require('agora-token/src/AccessToken2');

function check(c, index) {
  const where = `check ${index} (${c.kind})`;
  const parsed = new AccessToken2();
  assert.ok(parsed.from_string(c.token), `${where}: agora-token cannot parse the token`);
  assert.ok(parsed.verifySignature(c.certificate), `${where}: the signature does not verify`);
  assert.equal(parsed.appId.toString(), c.app_id, `${where}: app id`);
  assert.equal(parsed.expire, c.ttl, `${where}: token expire`);
  const rebuilt = new AccessToken2(c.app_id, c.certificate, parsed.issueTs, c.ttl);
  rebuilt.salt = parsed.salt;
  if (c.kind === 'rtc') {
    const rtc = new ServiceRtc(c.channel, c.account);
    rtc.add_privilege(ServiceRtc.kPrivilegeJoinChannel, c.privilege_ttl);
    if (c.role === 'publisher') {
      rtc.add_privilege(ServiceRtc.kPrivilegePublishAudioStream, c.privilege_ttl);
      rtc.add_privilege(ServiceRtc.kPrivilegePublishVideoStream, c.privilege_ttl);
      rtc.add_privilege(ServiceRtc.kPrivilegePublishDataStream, c.privilege_ttl);
    }
    rebuilt.add_service(rtc);
    if (c.with_rtm) {
      const rtm = new ServiceRtm(c.account);
      rtm.add_privilege(ServiceRtm.kPrivilegeLogin, c.ttl);
      rebuilt.add_service(rtm);
    }
  } else {
    const rtm = new ServiceRtm(c.user_id);
    rtm.add_privilege(ServiceRtm.kPrivilegeLogin, c.ttl);
    rebuilt.add_service(rtm);
  }
  const payload = (token) => zlib.inflateSync(Buffer.from(token.slice(3), 'base64'));
  assert.ok(c.token.startsWith('007'), `${where}: version`);
  assert.deepEqual(payload(c.token), payload(rebuilt.build()),
    `${where}: agora-token builds another payload from the same inputs`);
  return { issue_ts: parsed.issueTs, expire: parsed.expire, salt: parsed.salt };
}

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
try {
  process.stdout.write(JSON.stringify(input.checks.map(check)) + '\n');
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
