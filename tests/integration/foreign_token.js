// Builds, with npm agora-token, tokens signed by the test app whose service
// shape chat-tokend must refuse to renew: an RTC token with privileges of
// neither publisher nor subscriber (buildTokenWithUidAndPrivilege: join and
// publish audio only), a Chat + RTM token, a Chat token holding both
// privileges.
// stdin: {"shape", "app_id", "certificate"}; stdout: {"token"}.
'use strict';
const fs = require('node:fs');
const { AccessToken2, ServiceChat, ServiceRtc, ServiceRtm } = require('agora-token/src/AccessToken2');

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const token = new AccessToken2(input.app_id, input.certificate, Math.floor(Date.now() / 1000), 3600);
if (input.shape === 'rtc_join_and_audio') {
  const rtc = new ServiceRtc('room', 42);
  rtc.add_privilege(ServiceRtc.kPrivilegeJoinChannel, 3600);
  rtc.add_privilege(ServiceRtc.kPrivilegePublishAudioStream, 3600);
  token.add_service(rtc);
} else if (input.shape === 'chat_and_rtm') {
  const chat = new ServiceChat('alice');
  chat.add_privilege(ServiceChat.kPrivilegeUser, 3600);
  const rtm = new ServiceRtm('alice');
  rtm.add_privilege(ServiceRtm.kPrivilegeLogin, 3600);
  token.add_service(chat);
  token.add_service(rtm);
} else if (input.shape === 'chat_two_privileges') {
  const chat = new ServiceChat('alice');
  chat.add_privilege(ServiceChat.kPrivilegeUser, 3600);
  chat.add_privilege(ServiceChat.kPrivilegeApp, 3600);
  token.add_service(chat);
} else {
  process.stderr.write(`unknown shape ${input.shape}\n`);
  process.exit(2);
}
process.stdout.write(JSON.stringify({ token: token.build() }) + '\n');
