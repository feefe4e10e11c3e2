/* The routes of AgoraIO-Community/agora-token-service on the HTTP side port
 * (http.agora_token_service_routes), so that its users can switch by
 * changing a URL: GET /rtc/:channelName/:role/:tokenType/:uid/ (?expiry=),
 * GET /rtm/:uid/, GET /chat/app/, GET /chat/account/:chatid/, POST
 * /getToken and GET /ping, with its JSON shapes ({"rtcToken"}, {"rtmToken"},
 * {"chatToken"}, {"token"}, {"message":"pong"}) and its trailing-slash
 * redirects (gin's: 301 for GET, 307 otherwise). Tokens come from our
 * handlers, under our auth (the matching RPC's method) and our rules.
 * This file holds the pure parts (routing, parsing); http.c serves them. */
#ifndef SRV_HTTP_AGORA_H
#define SRV_HTTP_AGORA_H

#include <stddef.h>
#include <stdint.h>

#include "handlers.h"
#include "http_rules.h"
#include "method.h"
#include "rtc_handlers.h"

/* Decoded path segments and user ids longer than this are refused: the
 * longest thing they carry is a 255-byte RTC account. */
#define SRV_AGORA_SEGMENT_MAX 256

enum srv_agora_route {
    SRV_AGORA_NONE = 0,     /* not one of these routes */
    SRV_AGORA_RTC,          /* GET /rtc/:channelName/:role/:tokenType/:uid/ */
    SRV_AGORA_RTM,          /* GET /rtm/:uid/ */
    SRV_AGORA_CHAT_APP,     /* GET /chat/app/ */
    SRV_AGORA_CHAT_ACCOUNT, /* GET /chat/account/:chatid/ */
    SRV_AGORA_GET_TOKEN,    /* POST /getToken */
    SRV_AGORA_PING,         /* GET /ping */
};

typedef struct srv_agora_match {
    enum srv_agora_route route;
    /* 1: the route lives at this path with (or without) a trailing slash;
     * answer a redirect to location (the path only: add the query) */
    int redirect;
    char location[SRV_HTTP_URL_MAX + 2];
    size_t segment_count;
    char segments[4][SRV_AGORA_SEGMENT_MAX + 1]; /* percent-decoded */
} srv_agora_match;

/* Matches a raw path (still percent-encoded, no query). SRV_OK with route
 * NONE when it is none of these; INVALID_ARGUMENT for a segment that does
 * not decode. */
int srv_agora_match_path(const char *path, srv_agora_match *match, srv_status *status);

/* What a request asks for, in terms of our handlers. */
typedef struct srv_agora_ask {
    enum srv_agora_route kind; /* RTC, RTM, CHAT_APP or CHAT_ACCOUNT */
    srv_rtc_request rtc;       /* RTC: points into channel and user */
    char channel[SRV_AGORA_SEGMENT_MAX + 1];
    char user[SRV_AGORA_SEGMENT_MAX + 1]; /* RTC account, RTM user id, Chat username */
    uint32_t ttl;                         /* 0 = tokens.default_ttl_seconds */
    const char *token_key;                /* the answer's JSON key: "rtcToken", ..., "token" */
} srv_agora_ask;

/* The method whose handler answers kind (a caller needs it in `methods`);
 * CT_METHOD_UNKNOWN for PING, GET_TOKEN (the body tells) and NONE. */
enum ct_method srv_agora_method(enum srv_agora_route kind);

/* A GET route's ask from its segments and ?expiry= (NULL when absent:
 * the configured default). role "publisher" is a publisher and anything
 * else a subscriber, as agora-token-service has it; tokenType is uid (a
 * decimal uint32; empty = 0, any uid) or userAccount. SRV_OK or
 * INVALID_ARGUMENT naming the parameter. */
int srv_agora_ask_from_path(const srv_agora_match *match, const char *expiry, srv_agora_ask *ask,
                            srv_status *status);

/* POST /getToken's JSON body {"tokenType": "rtc"|"rtm"|"chat", "channel",
 * "role", "uid", "expire"}: other keys are ignored (as Go's decoder does),
 * wrong types refused. rtc: channel and uid required, a uid of digits is a
 * uid, else an account; rtm: uid required, a channel (agora-token-service's
 * RTC stream-data privileges) is refused; chat: no uid is an app token,
 * else a user token. SRV_OK or INVALID_ARGUMENT. */
int srv_agora_ask_from_body(const char *body, size_t len, srv_agora_ask *ask, srv_status *status);

#endif
