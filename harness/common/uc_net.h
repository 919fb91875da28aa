/* uc_net: socket addresses as text. */
#ifndef UC_NET_H
#define UC_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* The numeric host ("127.0.0.1", "::1", no brackets) into host and the port
 * into *out_port (either may be NULL). Returns 0, or -1 for a family other
 * than AF_INET and AF_INET6 (host is then "", the port 0). */
int uc_sockaddr_host_port(const struct sockaddr *sa, char *host, size_t host_len, int *out_port);

#endif
