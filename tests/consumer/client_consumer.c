/*
 * client_consumer.c - an out-of-tree program using libkvclient: its header
 * (which includes libkv's kv.h) compiles and the library links and
 * answers, without a server. Built by run_consumer.sh with pkg-config
 * and with CMake (libkv::kvclient).
 */
#include <stdio.h>
#include <string.h>

#include <kv_client.h>

int main(void)
{
    if (strcmp(kv_client_version(), KV_CLIENT_VERSION_STRING) != 0) {
        fprintf(stderr, "client_consumer: header %s, library %s\n", KV_CLIENT_VERSION_STRING,
                kv_client_version());
        return 1;
    }
    if (strcmp(kv_client_status_name(KV_NOT_FOUND), "NOT_FOUND") != 0) {
        fprintf(stderr, "client_consumer: KV_NOT_FOUND is %s\n", kv_client_status_name(KV_NOT_FOUND));
        return 1;
    }
    kv_client_options o;
    kv_client_options_init(&o);
    printf("client_consumer: libkvclient %s working (default port %u)\n", kv_client_version(),
           (unsigned)o.port);
    return 0;
}
