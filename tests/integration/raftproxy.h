/*
 * raftproxy.h - a TCP forwarder between the Raft ports of a test
 * cluster's nodes that can cut, delay and heal the link between any two
 * of them: network partitions without network namespaces or a firewall.
 *
 * Every Raft node dials the others at the addresses of the cluster's
 * configuration and listens at its own --raft-bind. The proxy listens on
 * node j's configured address and forwards each connection to node j's
 * bound port; so every byte from node i to node j passes through the
 * proxy's listener for j, on a connection node i dialed. The proxy learns
 * i from the first bytes node i sends: canonical raft's TCP handshake
 * (little-endian u64 protocol version, u64 server id, u64 address length,
 * the address), which is forwarded unchanged. Node ids are 1..n for the
 * proxy's nodes 0..n-1.
 *
 * A cut link is silent, as a real partition: the proxy stops reading and
 * writing the link's connections in both directions (bytes wait in the
 * kernel's buffers; the nodes see no error, only silence) and holds new
 * connections on it the same way; when the link heals, what waited is
 * delivered late, as TCP would after a partition. A delayed link holds
 * every chunk it reads for that many milliseconds before writing it.
 *
 * One thread runs the proxy (poll); the calls below may be made from any
 * thread.
 */
#ifndef KVD_TEST_RAFTPROXY_H
#define KVD_TEST_RAFTPROXY_H

#include <stdint.h>

typedef struct raft_proxy raft_proxy;

/* Listens on 127.0.0.1:listen_ports[j] for node j (0 <= j < n <= 8),
 * forwarding to 127.0.0.1:target_ports[j]. NULL if a port cannot be
 * bound or the thread not started. */
raft_proxy *raft_proxy_start(int n, const int *listen_ports, const int *target_ports);
/* Stops the thread and closes every connection. NULL is fine. */
void raft_proxy_stop(raft_proxy *p);

/* Cuts / heals the link between nodes a and b (both directions). */
void raft_proxy_cut(raft_proxy *p, int a, int b);
void raft_proxy_heal(raft_proxy *p, int a, int b);
/* Cuts every link of node a; heals every link. */
void raft_proxy_isolate(raft_proxy *p, int a);
void raft_proxy_heal_all(raft_proxy *p);
/* Holds what goes between a and b for ms milliseconds (0: none). */
void raft_proxy_delay(raft_proxy *p, int a, int b, int ms);

/* Bytes forwarded so far from node a to node b. */
uint64_t raft_proxy_bytes(raft_proxy *p, int a, int b);

#endif /* KVD_TEST_RAFTPROXY_H */
