/* uc_net: socket addresses as text (see uc_net.h). */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "uc_net.h"

int
uc_sockaddr_host_port(const struct sockaddr *sa, char *host, size_t host_len, int *out_port)
{
    const void *addr;
    int port;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) sa;
        addr = &sin->sin_addr;
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) (const void *) sa;
        addr = &sin6->sin6_addr;
        port = ntohs(sin6->sin6_port);
    } else {
        addr = NULL;
        port = 0;
    }
    if (out_port != NULL)
        *out_port = port;
    if (host != NULL && host_len > 0) {
        host[0] = '\0';
        if (addr != NULL && inet_ntop(sa->sa_family, addr, host, (socklen_t) host_len) == NULL)
            host[0] = '\0';
    }
    return addr != NULL ? 0 : -1;
}
