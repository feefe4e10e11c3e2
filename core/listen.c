/* Listen addresses (see listen.h). */
#include "listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Splits "host:port" or "[v6]:port" into host (brackets dropped) and port.
 * 0 on success; -1 with the reason in why. */
static int split_host_port(const char *addr, ct_listen_addr *out, const char **why)
{
    const char *host_start = addr;
    const char *host_end;
    const char *colon;
    unsigned value = 0;
    size_t digits;

    if (addr[0] == '[') {
        host_start = addr + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':') {
            *why = "an IPv6 address must be written [address]:port";
            return -1;
        }
        colon = host_end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            *why = "must be host:port, [v6]:port or unix:/absolute/path";
            return -1;
        }
        host_end = colon;
        if (memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
            *why = "an IPv6 address must be written [address]:port";
            return -1;
        }
    }
    if (host_end == host_start) {
        *why = "the host is empty";
        return -1;
    }
    if ((size_t)(host_end - host_start) >= sizeof(out->host)) {
        *why = "the host is too long";
        return -1;
    }
    digits = strlen(colon + 1);
    if (digits == 0 || digits > 5 || strspn(colon + 1, "0123456789") != digits) {
        *why = "the port must be a decimal number 0..65535";
        return -1;
    }
    for (size_t i = 0; i < digits; i++) {
        value = value * 10 + (unsigned)(colon[1 + i] - '0');
    }
    if (value > 65535) {
        *why = "the port must be a decimal number 0..65535";
        return -1;
    }
    memcpy(out->host, host_start, (size_t)(host_end - host_start));
    out->host[host_end - host_start] = '\0';
    out->port = value;
    out->is_v6 = addr[0] == '[';
    return 0;
}

static int parse_unix(const char *addr, ct_listen_addr *out, const char **why)
{
    const char *path = addr + strlen(CT_LISTEN_UNIX_PREFIX);

    if (path[0] != '/') {
        *why = "a unix socket path must be absolute (unix:/path)";
        return -1;
    }
    if (strlen(path) >= sizeof(out->path)) {
        *why = "a unix socket path must be shorter than 108 bytes";
        return -1;
    }
    out->is_unix = 1;
    memcpy(out->path, path, strlen(path) + 1);
    return 0;
}

int ct_listen_parse(const char *addr, ct_listen_addr *out, const char **why)
{
    struct in6_addr v6;

    memset(out, 0, sizeof(*out));
    if (strncmp(addr, CT_LISTEN_UNIX_PREFIX, strlen(CT_LISTEN_UNIX_PREFIX)) == 0) {
        return parse_unix(addr, out, why);
    }
    if (split_host_port(addr, out, why) != 0) {
        return -1;
    }
    if (out->is_v6) {
        if (inet_pton(AF_INET6, out->host, &v6) != 1) {
            *why = "the address in [brackets] is not an IPv6 address";
            return -1;
        }
        return 0;
    }
    if (strspn(out->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
        strlen(out->host)) {
        *why = "the host may hold only letters, digits, '.' and '-'";
        return -1;
    }
    return 0;
}

int ct_listen_is_local(const char *addr)
{
    ct_listen_addr parsed;
    const char *why;
    struct in_addr v4;
    struct in6_addr v6;

    if (addr == NULL) {
        return 0;
    }
    if (strncmp(addr, CT_LISTEN_UNIX_PREFIX, strlen(CT_LISTEN_UNIX_PREFIX)) == 0) {
        return 1;
    }
    memset(&parsed, 0, sizeof(parsed));
    if (split_host_port(addr, &parsed, &why) != 0) {
        return 0;
    }
    if (strcasecmp(parsed.host, "localhost") == 0) {
        return 1;
    }
    if (inet_pton(AF_INET, parsed.host, &v4) == 1) {
        return ((const unsigned char *)&v4)[0] == 127;
    }
    if (parsed.is_v6 && inet_pton(AF_INET6, parsed.host, &v6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
    }
    return 0;
}

void ct_listen_format(const ct_listen_addr *addr, unsigned port, char *out, size_t outlen)
{
    snprintf(out, outlen, addr->is_v6 ? "[%s]:%u" : "%s:%u", addr->host, port);
}

void ct_listen_remove_stale_socket(const ct_listen_addr *addr)
{
    struct stat st;

    if (addr->is_unix && stat(addr->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(addr->path);
    }
}
