/*
 * crash_writer.c - the process test_crash kills: two threads write to a
 * durable store (fsync=always) and print "ack T N" on stdout once each
 * write has returned. Thread T's write N sets the three keys of group
 * T:(N % 10) and the key lastT to N in one kv_mset.
 *
 * Usage: crash_writer DIR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

static kv_store *store;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static long read_last(int t)
{
    char k[16], buf[32] = {0};
    snprintf(k, sizeof k, "last%d", t);
    size_t len;
    if (kv_get_into(store, k, strlen(k), buf, sizeof buf - 1, &len, NULL) != KV_OK)
        return 0;
    return atol(buf);
}

static void *writer(void *arg)
{
    int t = (int)(long)arg;
    for (long n = read_last(t) + 1;; n++) {
        char v[32], ka[48], kb[48], kc[48], kl[48];
        snprintf(v, sizeof v, "%ld", n);
        snprintf(ka, sizeof ka, "g%d:%ld:a", t, n % 10);
        snprintf(kb, sizeof kb, "g%d:%ld:b", t, n % 10);
        snprintf(kc, sizeof kc, "g%d:%ld:c", t, n % 10);
        snprintf(kl, sizeof kl, "last%d", t);
        size_t vl = strlen(v);
        kv_pair p[4] = {{ka, strlen(ka), v, vl}, {kb, strlen(kb), v, vl},
                        {kc, strlen(kc), v, vl}, {kl, strlen(kl), v, vl}};
        int rc = kv_mset(store, p, 4, NULL);
        if (rc != KV_OK) {
            fprintf(stderr, "crash_writer: mset: %s\n", kv_strerror(rc));
            exit(1);
        }
        pthread_mutex_lock(&out_mu);
        printf("ack %d %ld\n", t, n);
        fflush(stdout);
        pthread_mutex_unlock(&out_mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: crash_writer DIR\n");
        return 2;
    }
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = argv[1];
    c.fsync = KV_FSYNC_ALWAYS;
    c.segment_bytes = 16384; /* rotations happen too */
    c.snapshot_log_bytes = 65536; /* and snapshots */
    int rc = kv_open_config(&c, &store);
    if (rc != KV_OK) {
        fprintf(stderr, "crash_writer: open: %s: %s\n", kv_strerror(rc), kv_last_error());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_t th[2];
    for (long t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, writer, (void *)t);
    pthread_join(th[0], NULL);
    return 0;
}
