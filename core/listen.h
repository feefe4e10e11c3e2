/* Listen addresses, parsed in one place (as redis' anet.c): "host:port",
 * "[v6]:port" or "unix:/absolute/path"; port 0 asks the kernel for a free
 * port. The config checks them with it, the gRPC and HTTP listeners bind
 * and log them with it. */
#ifndef CT_LISTEN_H
#define CT_LISTEN_H

#include <stddef.h>

#define CT_LISTEN_HOST_MAX 256
#define CT_LISTEN_UNIX_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) on Linux */
#define CT_LISTEN_UNIX_PREFIX "unix:"

typedef struct ct_listen_addr {
    int is_unix;
    char path[CT_LISTEN_UNIX_PATH_MAX]; /* unix: the socket path */
    char host[CT_LISTEN_HOST_MAX];      /* else: the host, brackets dropped */
    unsigned port;                      /* 0..65535; 0 = any free port */
    int is_v6;                          /* the host was written [in brackets] */
} ct_listen_addr;

/* Parses and checks addr: 0, or -1 with the reason in why (a static
 * string). Hosts are letters, digits, '.' and '-', or an IPv6 address in
 * brackets; unix paths are absolute and shorter than 108 bytes. */
int ct_listen_parse(const char *addr, ct_listen_addr *out, const char **why);

/* 1 for "unix:..." and for loopback hosts (127.0.0.0/8, localhost, [::1]). */
int ct_listen_is_local(const char *addr);

/* "host:port" or "[v6]:port" of a parsed TCP address with the port given
 * (the one the kernel picked for port 0). */
void ct_listen_format(const ct_listen_addr *addr, unsigned port, char *out, size_t outlen);

/* A socket file left by an earlier run would make bind fail: removes the
 * file at a unix address when it is a socket. Nothing for TCP addresses. */
void ct_listen_remove_stale_socket(const ct_listen_addr *addr);

#endif
