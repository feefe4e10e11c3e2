/* GetRtcTokenRequest (protobuf-c) as the handler's srv_rtc_request: the
 * oneof user, the role number and the TTLs. Shared by grpc_server.c and the
 * request fuzzer, so that both map the message the same way. The strings
 * stay the message's: req must outlive out. */
#ifndef SRV_RTC_PROTO_H
#define SRV_RTC_PROTO_H

#include <string.h>

#include "chattoken/v1/token_service.pb-c.h"
#include "rtc_handlers.h"

static inline void srv_rtc_request_from_proto(const Chattoken__V1__GetRtcTokenRequest *req,
                                              srv_rtc_request *out)
{
    memset(out, 0, sizeof(*out));
    out->channel_name = req->channel_name;
    if (req->user_case == CHATTOKEN__V1__GET_RTC_TOKEN_REQUEST__USER_UID) {
        out->user = SRV_RTC_USER_UID;
        out->uid = req->uid;
    } else if (req->user_case == CHATTOKEN__V1__GET_RTC_TOKEN_REQUEST__USER_ACCOUNT) {
        out->user = SRV_RTC_USER_ACCOUNT;
        out->account = req->account;
    }
    out->role = (int)req->role;
    out->ttl_seconds = req->ttl_seconds;
    out->privilege_ttl_seconds = req->privilege_ttl_seconds;
    out->with_rtm = req->with_rtm;
}

#endif
