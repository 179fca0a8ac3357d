/*
 * hitratio.c - kvbench_evict_hitratio: the hit ratio of a cache under a
 * memory limit, for libkv or for a Redis server, replaying one trace
 * (trace.c) the same way for both.
 *
 * Cache-aside, in batches of B requests: GET the batch's keys, count the
 * hits, then SET every key that missed (value: V bytes). Keys are
 * "key:<id>" for both systems, values the same bytes, so at the same
 * memory limit the two hold what their memory lets them hold. Batching is
 * how Redis is driven fast enough (a pipeline of B GETs, then one of the
 * SETs); libkv replays the same batches so that both see the same order
 * of reads and writes.
 *
 *   libkv: a store with kv_config.max_memory = LIMIT and the policy.
 *   redis: a running redis-server at HOST:PORT, already configured with
 *          maxmemory and maxmemory-policy (run.sh starts one), via hiredis.
 *
 * Prints one line: system, policy, trace, requests, hits, hit ratio, keys
 * held at the end, keys evicted, memory used at the end.
 *
 * Usage: kvbench_evict_hitratio --trace FILE --limit BYTES --policy NAME
 *        [--value-size V] [--batch B] [--redis HOST:PORT]
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

typedef struct result {
    uint64_t requests, hits, keys, evicted, memory;
} result;

static uint32_t *load_trace(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint32_t *t = malloc((size_t)bytes + 4);
    if (!t || fread(t, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        free(t);
        return NULL;
    }
    fclose(f);
    *n = (size_t)bytes / 4;
    return t;
}

static int run_libkv(const uint32_t *t, size_t n, uint64_t limit, int policy, size_t vlen,
                     size_t batch, result *r)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.max_memory = limit;
    c.eviction_policy = policy;
    kv_store *s;
    int rc = kv_open_config(&c, &s);
    if (rc != KV_OK) {
        fprintf(stderr, "kv_open_config: %s\n", kv_strerror(rc));
        return -1;
    }
    char *val = malloc(vlen), *buf = malloc(vlen + 1);
    memset(val, 'v', vlen);
    size_t *miss = malloc(batch * sizeof *miss);
    char key[32];
    for (size_t i = 0; i < n; i += batch) {
        size_t end = i + batch < n ? i + batch : n, nmiss = 0;
        for (size_t j = i; j < end; j++) {
            int kl = snprintf(key, sizeof key, "key:%u", t[j]);
            size_t got;
            rc = kv_get_into(s, key, (size_t)kl, buf, vlen + 1, &got, NULL);
            if (rc == KV_OK)
                r->hits++;
            else
                miss[nmiss++] = j;
        }
        for (size_t m = 0; m < nmiss; m++) {
            int kl = snprintf(key, sizeof key, "key:%u", t[miss[m]]);
            rc = kv_set(s, key, (size_t)kl, val, vlen, NULL);
            if (rc != KV_OK && rc != KV_MEMORY_LIMIT) {
                fprintf(stderr, "kv_set: %s\n", kv_strerror(rc));
                return -1;
            }
        }
    }
    r->requests = n;
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    r->keys = m.keys;
    r->evicted = m.evicted_keys;
    r->memory = m.memory_used;
    kv_close(s);
    free(val);
    free(buf);
    free(miss);
    return 0;
}

/* A number from an INFO reply ("name:123"). */
static uint64_t info_field(redisContext *rc, const char *section, const char *name)
{
    redisReply *rep = redisCommand(rc, "INFO %s", section);
    uint64_t v = 0;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        char want[64];
        snprintf(want, sizeof want, "\n%s:", name);
        const char *p = strstr(rep->str, want);
        if (p)
            v = strtoull(p + strlen(want), NULL, 10);
    }
    freeReplyObject(rep);
    return v;
}

static int run_redis(const char *addr, const uint32_t *t, size_t n, size_t vlen, size_t batch,
                     result *r)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        fprintf(stderr, "--redis HOST:PORT\n");
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    redisContext *rc = redisConnect(host, atoi(colon + 1));
    if (!rc || rc->err) {
        fprintf(stderr, "redis: %s\n", rc ? rc->errstr : "cannot connect");
        return -1;
    }
    char *val = malloc(vlen);
    memset(val, 'v', vlen);
    size_t *miss = malloc(batch * sizeof *miss);
    char key[32];
    uint64_t refused = 0;
    for (size_t i = 0; i < n; i += batch) {
        size_t end = i + batch < n ? i + batch : n, nmiss = 0;
        for (size_t j = i; j < end; j++)
            redisAppendCommand(rc, "GET key:%u", t[j]);
        for (size_t j = i; j < end; j++) {
            redisReply *rep;
            if (redisGetReply(rc, (void **)&rep) != REDIS_OK) {
                fprintf(stderr, "redis: %s\n", rc->errstr);
                return -1;
            }
            if (rep->type == REDIS_REPLY_STRING)
                r->hits++;
            else
                miss[nmiss++] = j;
            freeReplyObject(rep);
        }
        for (size_t m = 0; m < nmiss; m++) {
            snprintf(key, sizeof key, "key:%u", t[miss[m]]);
            redisAppendCommand(rc, "SET %s %b", key, val, vlen);
        }
        for (size_t m = 0; m < nmiss; m++) {
            redisReply *rep;
            if (redisGetReply(rc, (void **)&rep) != REDIS_OK) {
                fprintf(stderr, "redis: %s\n", rc->errstr);
                return -1;
            }
            refused += rep->type == REDIS_REPLY_ERROR;
            freeReplyObject(rep);
        }
    }
    r->requests = n;
    redisReply *rep = redisCommand(rc, "DBSIZE");
    r->keys = rep && rep->type == REDIS_REPLY_INTEGER ? (uint64_t)rep->integer : 0;
    freeReplyObject(rep);
    r->evicted = info_field(rc, "stats", "evicted_keys");
    r->memory = info_field(rc, "memory", "used_memory");
    if (refused)
        fprintf(stderr, "redis refused %llu SETs (OOM)\n", (unsigned long long)refused);
    redisFree(rc);
    free(val);
    free(miss);
    return 0;
}

int main(int argc, char **argv)
{
    const char *trace = NULL, *redis = NULL, *policy_name = "allkeys-lru";
    uint64_t limit = 0;
    size_t vlen = 100, batch = 64;
    static const struct option lo[] = {
        {"trace", 1, 0, 't'},      {"limit", 1, 0, 'l'}, {"policy", 1, 0, 'p'},
        {"value-size", 1, 0, 'v'}, {"batch", 1, 0, 'b'}, {"redis", 1, 0, 'r'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't': trace = optarg; break;
        case 'l': limit = strtoull(optarg, NULL, 10); break;
        case 'p': policy_name = optarg; break;
        case 'v': vlen = strtoull(optarg, NULL, 10); break;
        case 'b': batch = strtoull(optarg, NULL, 10); break;
        case 'r': redis = optarg; break;
        default: return 2;
        }
    }
    int policy = kv_eviction_policy_parse(policy_name);
    if (!trace || !limit || policy < 0 || !batch || !vlen) {
        fprintf(stderr, "usage: %s --trace FILE --limit BYTES --policy NAME [--value-size V] "
                        "[--batch B] [--redis HOST:PORT]\n", argv[0]);
        return 2;
    }
    size_t n;
    uint32_t *t = load_trace(trace, &n);
    if (!t)
        return 1;
    result r = {0};
    int rc = redis ? run_redis(redis, t, n, vlen, batch, &r)
                   : run_libkv(t, n, limit, policy, vlen, batch, &r);
    free(t);
    if (rc != 0)
        return 1;
    const char *base = strrchr(trace, '/');
    printf("%-6s %-14s %-12s requests %llu hits %llu hit_ratio %.4f keys %llu evicted %llu "
           "memory %llu limit %llu\n",
           redis ? "redis" : "libkv", policy_name, base ? base + 1 : trace,
           (unsigned long long)r.requests, (unsigned long long)r.hits,
           (double)r.hits / (double)r.requests, (unsigned long long)r.keys,
           (unsigned long long)r.evicted, (unsigned long long)r.memory,
           (unsigned long long)limit);
    return 0;
}
