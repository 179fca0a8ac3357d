/*
 * test_status.c - status codes, kv_strerror, kv_status_name and the
 * library's version.
 */
#include <limits.h>

#include "kvtest.h"

struct status_row {
    int code;
    const char *name;
    const char *text;
};

#define ROW(name, code, text) {code, #name, text},
static const struct status_row rows[] = {KV_STATUS_MAP(ROW)};
#undef ROW
#define NROWS (sizeof rows / sizeof rows[0])

Test(status, strerror_gives_the_documented_text_for_every_code)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *msg = kv_strerror(rows[i].code);
        cr_assert_not_null(msg, "kv_strerror(%d) is NULL", rows[i].code);
        cr_assert_str_eq(msg, rows[i].text, "kv_strerror(%d)", rows[i].code);
    }
}

Test(status, status_name_gives_the_symbolic_name_for_every_code)
{
    for (size_t i = 0; i < NROWS; i++) {
        const char *name = kv_status_name(rows[i].code);
        cr_assert_not_null(name, "kv_status_name(%d) is NULL", rows[i].code);
        cr_assert_str_eq(name, rows[i].name, "kv_status_name(%d)", rows[i].code);
    }
}

Test(status, strerror_of_unknown_codes_is_unknown_status)
{
    int unknown[] = {-1, 4, 9, 16, 25, 29, 44, 49, 51, 1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *msg = kv_strerror(unknown[i]);
        cr_assert_not_null(msg, "kv_strerror(%d) is NULL", unknown[i]);
        cr_assert_str_eq(msg, "unknown status", "kv_strerror(%d)", unknown[i]);
    }
}

Test(status, status_name_of_unknown_codes_is_not_null)
{
    int unknown[] = {-1, 4, 99, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        cr_assert_not_null(kv_status_name(unknown[i]), "kv_status_name(%d)",
                           unknown[i]);
}

Test(status, codes_have_their_stable_numbers)
{
    cr_assert_eq(KV_OK, 0);
    cr_assert_eq(KV_NOT_FOUND, 1);
    cr_assert_eq(KV_VERSION_MISMATCH, 2);
    cr_assert_eq(KV_CONFLICT, 3);
    cr_assert_eq(KV_INVALID_ARGUMENT, 10);
    cr_assert_eq(KV_BUFFER_TOO_SMALL, 14);
    cr_assert_eq(KV_STORE_FULL, 21);
    cr_assert_eq(KV_PROTOCOL, 30);
    cr_assert_eq(KV_INTERNAL, 50);
    /* every code is listed once */
    for (size_t i = 0; i < NROWS; i++)
        for (size_t j = i + 1; j < NROWS; j++)
            cr_assert_neq(rows[i].code, rows[j].code, "duplicate code %d",
                          rows[i].code);
}

Test(status, version_matches_header)
{
    cr_assert_not_null(kv_version());
    cr_assert_str_eq(kv_version(), KV_VERSION_STRING);
    cr_assert_eq(kv_version_number(), KV_VERSION_NUMBER);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", KV_VERSION_MAJOR, KV_VERSION_MINOR,
             KV_VERSION_PATCH);
    cr_assert_str_eq(buf, KV_VERSION_STRING);
    cr_assert_eq(KV_VERSION_NUMBER,
                 KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH);
}
