/*
 * test_durable.c - durable stores through the public API (kv.h, "Durable
 * stores"): round trips under each fsync policy, the directory lock,
 * snapshots and the log tail, backup and restore, and what open does with
 * torn, truncated, corrupted and missing files.
 */
#include "durtest.h"

/* Every kind of write, so that a reopen has something of each to prove. */
static void write_everything(kv_store *s)
{
    uint64_t v;
    for (int i = 0; i < 300; i++) {
        char k[32], val[64];
        snprintf(k, sizeof k, "key:%03d", i);
        snprintf(val, sizeof val, "value %d", i * 7);
        cr_assert_eq(kv_set(s, k, strlen(k), val, strlen(val), &v), KV_OK);
    }
    cr_assert_eq(kv_set(s, "empty", 5, "", 0, NULL), KV_OK);
    unsigned char bin[] = {0, 1, 2, 0, 255};
    cr_assert_eq(kv_set(s, bin, sizeof bin, bin, sizeof bin, NULL), KV_OK);
    size_t big_len = 3u << 20;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 31 + 7);
    cr_assert_eq(kv_set(s, "big", 3, big, big_len, NULL), KV_OK);
    free(big);
    cr_assert_eq(kv_set(s, "cas", 3, "1", 1, &v), KV_OK);
    cr_assert_eq(kv_set_if(s, "cas", 3, "2", 1, v, &v), KV_OK);
    cr_assert_eq(kv_set_if(s, "cas", 3, "3", 1, v + 100, NULL), KV_VERSION_MISMATCH);
    cr_assert_eq(kv_delete(s, "key:000", 7, NULL), KV_OK);
    cr_assert_eq(kv_exists(s, "key:001", 7, &v), KV_OK);
    cr_assert_eq(kv_delete_if(s, "key:001", 7, v, NULL), KV_OK);
    kv_pair pairs[3] = {{"m1", 2, "a", 1}, {"m2", 2, "b", 1}, {"m3", 2, "c", 1}};
    cr_assert_eq(kv_mset(s, pairs, 3, NULL), KV_OK);
    kv_key dels[3] = {{"key:002", 7}, {"key:003", 7}, {"nope", 4}};
    size_t deleted;
    cr_assert_eq(kv_mdelete(s, dels, 3, &deleted, NULL), KV_OK);
    cr_assert_eq(deleted, 2);
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    kv_value got;
    cr_assert_eq(kv_txn_get(t, "m1", 2, &got), KV_OK);
    kv_value_free(&got);
    cr_assert_eq(kv_txn_set(t, "t1", 2, "tx", 2), KV_OK);
    cr_assert_eq(kv_txn_delete(t, "m2", 2), KV_OK);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_OK);
    kv_compare cmp = {.kind = KV_CMP_EXISTS, .key = "t1", .klen = 2};
    kv_op ops[2] = {{KV_OP_SET, "c1", 2, "then", 4, 0}, {KV_OP_DELETE, "m3", 2, NULL, 0, 0}};
    kv_txn_result res;
    cr_assert_eq(kv_txn_cond(s, &cmp, 1, ops, 2, NULL, 0, &res), KV_OK);
    cr_assert(res.succeeded);
    kv_txn_result_free(&res);
}

static void round_trip(int policy)
{
    char *dir = dt_tmpdir("rt");
    kv_store *s = dt_open(dir, policy);
    write_everything(s);
    dt_print before = dt_fingerprint(s);
    kv_metrics m1, m2;
    cr_assert_eq(kv_metrics_read(s, &m1, sizeof m1), KV_OK);
    cr_assert_eq(m1.durable_revision, m1.revision, "a write returns once durable");
    cr_assert_gt(m1.log_records, 0);
    kv_close(s);

    s = dt_open(dir, policy);
    dt_print after = dt_fingerprint(s);
    cr_assert(dt_print_eq(before, after), "every key, value and version comes back");
    cr_assert_eq(kv_metrics_read(s, &m2, sizeof m2), KV_OK);
    cr_assert_eq(m2.revision, m1.revision);
    cr_assert_eq(m2.keys, m1.keys);
    cr_assert_eq(m2.key_bytes, m1.key_bytes);
    cr_assert_eq(m2.value_bytes, m1.value_bytes);
    kv_recovery r;
    cr_assert_eq(kv_recovery_read(s, &r, sizeof r), KV_OK);
    cr_assert_eq(r.keys, m1.keys);
    cr_assert_eq(r.revision, m1.revision);
    cr_assert_eq(r.records, m1.log_records);
    /* Revisions continue where they were. */
    uint64_t v;
    cr_assert_eq(kv_set(s, "after", 5, "x", 1, &v), KV_OK);
    cr_assert_eq(v, m1.revision + 1);
    kv_value got;
    cr_assert_eq(kv_get(s, "cas", 3, &got), KV_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_eq(((char *)got.data)[0], '2');
    kv_value_free(&got);
    cr_assert_eq(kv_get(s, "m2", 2, &got), KV_NOT_FOUND);
    cr_assert_eq(kv_get(s, "key:002", 7, &got), KV_NOT_FOUND);
    kv_close(s);

    /* And once more, with the new write. */
    s = dt_open(dir, policy);
    cr_assert_eq(kv_exists(s, "after", 5, &v), KV_OK);
    cr_assert_eq(v, m1.revision + 1);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, round_trip_fsync_always) { round_trip(KV_FSYNC_ALWAYS); }
Test(durable, round_trip_fsync_everysec) { round_trip(KV_FSYNC_EVERYSEC); }
Test(durable, round_trip_fsync_no) { round_trip(KV_FSYNC_NO); }

Test(durable, in_memory_config_stays_in_memory)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    cr_assert_eq(kv_set(s, "k", 1, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv_sync(s, 0), KV_OK);
    cr_assert_eq(kv_durable_revision(s), 1);
    cr_assert_eq(kv_snapshot(s), KV_UNSUPPORTED);
    cr_assert_eq(kv_set_durable_callback(s, NULL, NULL), KV_INVALID_ARGUMENT);
    kv_close(s);
}

Test(durable, bad_config_is_refused)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    kv_store *s = NULL;
    c.fsync = 7;
    c.dir = "/tmp/never-created-by-libkv";
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    kv_config_init(&c, sizeof c);
    c.size = 4;
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    kv_config_init(&c, sizeof c);
    c.dir = "";
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    cr_assert_null(s);
}

Test(durable, an_older_callers_smaller_config_gets_defaults_for_the_rest)
{
    char *dir = dt_tmpdir("size");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    /* A caller that knows the fields up to fsync only. */
    c.size = offsetof(kv_config, wait_durable);
    c.wait_durable = 0;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    uint64_t v;
    cr_assert_eq(kv_set(s, "k", 1, "v", 1, &v), KV_OK);
    cr_assert_geq(kv_durable_revision(s), v, "wait_durable defaulted to 1");
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, a_second_open_of_a_directory_is_locked_out)
{
    char *dir = dt_tmpdir("lock");
    kv_store *s = dt_open(dir, KV_FSYNC_EVERYSEC);
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    kv_store *t = NULL;
    cr_assert_eq(kv_open_config(&c, &t), KV_LOCKED);
    cr_assert_null(t);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    cr_assert(strstr(kv_last_error(), pid), "names the holder: %s", kv_last_error());
    kv_close(s);
    t = dt_open(dir, KV_FSYNC_EVERYSEC);
    kv_close(t);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, snapshot_then_log_tail_recovers_exactly_and_drops_covered_segments)
{
    char *dir = dt_tmpdir("snap");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.segment_bytes = 8192; /* many segments */
    c.snapshot_log_bytes = 0;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    char k[32], v[100];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "k%d", i % 500);
        cr_assert_eq(kv_set(s, k, strlen(k), v, (size_t)(i % 100), NULL), KV_OK);
    }
    int segs_before = dt_count(dir, "log-");
    cr_assert_gt(segs_before, 5);
    cr_assert_eq(kv_snapshot(s), KV_OK, "%s", kv_last_error());
    cr_assert_eq(dt_count(dir, "snap-"), 1);
    cr_assert_lt(dt_count(dir, "log-"), 3, "covered segments are removed");
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%d", i);
        if (i % 3 == 0)
            cr_assert_eq(kv_delete(s, k, strlen(k), NULL), KV_OK);
        else
            cr_assert_eq(kv_set(s, k, strlen(k), "after", 5, NULL), KV_OK);
    }
    cr_assert_eq(kv_snapshot(s), KV_OK);
    cr_assert_eq(dt_count(dir, "snap-"), 2, "the one before the newest stays");
    cr_assert_eq(kv_set(s, "between", 7, "x", 1, NULL), KV_OK);
    cr_assert_eq(kv_snapshot(s), KV_OK);
    cr_assert_eq(dt_count(dir, "snap-"), 2, "older snapshots are removed");
    kv_metrics unchanged;
    kv_metrics_read(s, &unchanged, sizeof unchanged);
    cr_assert_eq(kv_snapshot(s), KV_OK, "nothing changed: the newest one stands");
    kv_metrics m0;
    kv_metrics_read(s, &m0, sizeof m0);
    cr_assert_eq(m0.snapshots, unchanged.snapshots);
    cr_assert_eq(m0.snapshot_revision, unchanged.snapshot_revision);
    for (int i = 300; i < 400; i++) {
        snprintf(k, sizeof k, "k%d", i);
        cr_assert_eq(kv_set(s, k, strlen(k), "tail", 4, NULL), KV_OK);
    }
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.snapshots, 3);
    dt_print before = dt_fingerprint(s);
    kv_close(s);

    cr_assert_eq(kv_open_config(&c, &s), KV_OK, "%s", kv_last_error());
    cr_assert(dt_print_eq(before, dt_fingerprint(s)));
    kv_recovery r;
    kv_recovery_read(s, &r, sizeof r);
    cr_assert_gt(r.snapshot_revision, 2000);
    cr_assert_eq(r.records, 100, "only the records after the snapshot are replayed");
    kv_metrics m2;
    kv_metrics_read(s, &m2, sizeof m2);
    cr_assert_eq(m2.revision, m.revision);
    cr_assert_eq(m2.snapshot_revision, r.snapshot_revision);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, snapshots_are_taken_automatically_by_log_size)
{
    char *dir = dt_tmpdir("auto");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = KV_FSYNC_NO;
    c.snapshot_log_bytes = 64 * 1024;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    char v[1000];
    memset(v, 'x', sizeof v);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, v, sizeof v, NULL), KV_OK);
    kv_metrics m = dt_wait_metric(s, offsetof(kv_metrics, snapshots), 60);
    cr_assert_geq(m.snapshots, 1, "the background thread snapshots a grown log");
    cr_assert_eq(dt_count(dir, "snap-"), 1);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, backup_restores_the_exact_state_into_a_new_directory)
{
    char *dir = dt_tmpdir("bk");
    char *dir2 = dt_tmpdir("rs");
    char file[300];
    snprintf(file, sizeof file, "%s/backup.kvs", dir2);
    kv_store *s = dt_open(dir, KV_FSYNC_EVERYSEC);
    write_everything(s);
    dt_print at_backup = dt_fingerprint(s);
    uint64_t rev;
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    rev = m.revision;
    cr_assert_eq(kv_backup(s, file), KV_OK, "%s", kv_last_error());
    cr_assert_eq(kv_set(s, "later", 5, "x", 1, NULL), KV_OK);
    kv_close(s);

    char restored[320];
    snprintf(restored, sizeof restored, "%s/restored", dir2);
    cr_assert_eq(kv_restore(file, restored), KV_OK, "%s", kv_last_error());
    cr_assert_eq(kv_restore(file, restored), KV_INVALID_ARGUMENT, "not into a used directory");
    s = dt_open(restored, KV_FSYNC_EVERYSEC);
    cr_assert(dt_print_eq(at_backup, dt_fingerprint(s)));
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.revision, rev);
    uint64_t v;
    cr_assert_eq(kv_set(s, "new", 3, "y", 1, &v), KV_OK);
    cr_assert_eq(v, rev + 1);
    kv_close(s);
    s = dt_open(restored, KV_FSYNC_EVERYSEC);
    cr_assert_eq(kv_exists(s, "new", 3, &v), KV_OK);
    kv_close(s);

    /* A damaged backup is refused before anything is written. */
    size_t len;
    unsigned char *b = dt_read(file, &len);
    b[len / 2] ^= 0x40;
    dt_write(file, b, len);
    free(b);
    char other[320];
    snprintf(other, sizeof other, "%s/other", dir2);
    cr_assert_eq(kv_restore(file, other), KV_CORRUPT);
    cr_assert(strstr(kv_last_error(), "backup.kvs"), "%s", kv_last_error());
    cr_assert_eq(dt_count(other, "snap-"), 0);
    dt_rmdir(restored);
    dt_rmdir(other);
    dt_rmdir(dir);
    dt_rmdir(dir2);
    free(dir);
    free(dir2);
}

/* ---- damaged files ----------------------------------------------------- */

#define NREC 8
#define VLEN 20
/* A frame: 16-byte header, 16-byte record header, 12-byte change header,
 * key "kN" (2 bytes), value (20 bytes), padded to 8: 16 + 56. */
#define FRAME 72
#define SEG_HDR 32

/* Writes NREC records into dir's log, each setting kI. */
static void write_log(const char *dir, int fsync)
{
    kv_store *s = dt_open(dir, fsync);
    for (int i = 0; i < NREC; i++) {
        char k[4], v[VLEN];
        snprintf(k, sizeof k, "k%d", i);
        memset(v, 'a' + i, VLEN);
        cr_assert_eq(kv_set(s, k, 2, v, VLEN, NULL), KV_OK);
    }
    kv_close(s);
}

/* A directory whose log holds NREC records, each setting kI; returns the
 * segment's bytes up to the end of its records (the zeros the log wrote
 * ahead of them are checked and left out). */
static unsigned char *make_log(const char *dir, size_t *len, char **seg_path)
{
    write_log(dir, KV_FSYNC_ALWAYS);
    *seg_path = dt_find(dir, "log-");
    unsigned char *b = dt_read(*seg_path, len);
    cr_assert_geq(*len, SEG_HDR + NREC * FRAME);
    for (size_t i = SEG_HDR + NREC * FRAME; i < *len; i++)
        cr_assert_eq(b[i], 0, "byte %zu past the records is not zero", i);
    *len = SEG_HDR + NREC * FRAME;
    return b;
}

/* Opens dir; on success checks that it holds exactly the first n records'
 * keys and returns n, else returns -(status). */
static int open_and_count(const char *dir)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    kv_store *s;
    int rc = kv_open_config(&c, &s);
    if (rc != KV_OK)
        return -rc;
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    int n = (int)m.keys;
    DT_CHECK(m.revision == (uint64_t)n, "revision %llu with %d keys",
             (unsigned long long)m.revision, n);
    for (int i = 0; i < NREC; i++) {
        char k[4];
        snprintf(k, sizeof k, "k%d", i);
        uint64_t v;
        int e = kv_exists(s, k, 2, &v);
        DT_CHECK(i < n ? e == KV_OK && v == (uint64_t)i + 1 : e == KV_NOT_FOUND,
                 "key %s after recovering %d records", k, n);
    }
    kv_close(s);
    return n;
}

Test(durable, a_log_cut_at_any_offset_recovers_the_whole_records_before_the_cut)
{
    char *dir = dt_tmpdir("cut");
    size_t len;
    char *seg;
    unsigned char *b = make_log(dir, &len, &seg);
    for (size_t cut = 0; cut <= len; cut++) {
        dt_clear(dir);
        dt_write(seg, b, cut);
        int n = open_and_count(dir);
        /* A record whose header and payload are whole counts, even if
         * its zero padding was cut. */
        int want = cut < SEG_HDR ? 0 : (int)((cut - SEG_HDR + FRAME - 16 - 50) / FRAME);
        if (want > NREC)
            want = NREC;
        DT_CHECK(n == want, "cut at %zu: recovered %d records, expected %d", cut, n, want);
    }
    free(b);
    free(seg);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, a_flipped_byte_in_the_log_is_refused_unless_it_is_in_the_torn_last_record)
{
    char *dir = dt_tmpdir("flip");
    size_t len;
    char *seg;
    unsigned char *b = make_log(dir, &len, &seg);
    for (size_t at = 0; at < len; at++) {
        dt_clear(dir);
        b[at] ^= 0x10;
        dt_write(seg, b, len);
        b[at] ^= 0x10;
        int n = open_and_count(dir);
        if (at < SEG_HDR) {
            DT_CHECK(n == -KV_CORRUPT, "header byte %zu: got %d", at, n);
            continue;
        }
        size_t rec = (at - SEG_HDR) / FRAME, in = (at - SEG_HDR) % FRAME;
        bool padding = in >= 16 + 50;
        if (padding)
            DT_CHECK(n == NREC, "padding byte %zu changes nothing: got %d", at, n);
        else if (rec == NREC - 1)
            DT_CHECK(n == NREC - 1, "last record's byte %zu: a torn tail, got %d", at, n);
        else
            DT_CHECK(n == -KV_CORRUPT, "record %zu byte %zu: refused, got %d", rec, at, n);
    }
    /* The refusal names the file and the offset. */
    dt_clear(dir);
    b[SEG_HDR + FRAME + 20] ^= 1;
    dt_write(seg, b, len);
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_CORRUPT);
    cr_assert(strstr(kv_last_error(), "log-0000000000000001.kvl"), "%s", kv_last_error());
    char off[32];
    snprintf(off, sizeof off, "offset %d", SEG_HDR + FRAME);
    cr_assert(strstr(kv_last_error(), off), "%s", kv_last_error());
    free(b);
    free(seg);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, zeros_where_an_unsynced_write_was_lost_end_the_log_there)
{
    char *dir = dt_tmpdir("hole");
    size_t len;
    char *seg;
    unsigned char *b = make_log(dir, &len, &seg);
    /* Record 5 never reached the disk but 6 and 7 did (pages written out
     * of order before a power failure): a torn tail at record 5. */
    dt_clear(dir);
    memset(b + SEG_HDR + 5 * FRAME, 0, FRAME);
    dt_write(seg, b, len);
    cr_assert_eq(open_and_count(dir), 5);
    free(b);
    free(seg);
    dt_rmdir(dir);
    free(dir);
}

/* Under always and everysec the log writes zeros ahead of its records
 * (log.c, prefill: syncs then need not write the file's new size), and
 * readers take the first zeros for the end of the log: a reopened store
 * goes on writing over them, and damage among them is a torn tail, never
 * a lost record. Under no the file holds its records only. */
Test(durable, the_zeros_written_ahead_of_the_log_end_it_and_are_written_over)
{
    char *dir = dt_tmpdir("prefill");
    int policies[] = {KV_FSYNC_ALWAYS, KV_FSYNC_EVERYSEC, KV_FSYNC_NO};
    for (int p = 0; p < 3; p++) {
        dt_clear(dir);
        write_log(dir, policies[p]);
        char *seg = dt_find(dir, "log-");
        size_t len;
        unsigned char *b = dt_read(seg, &len);
        if (policies[p] == KV_FSYNC_NO) {
            cr_assert_eq(len, SEG_HDR + NREC * FRAME);
        } else {
            cr_assert_gt(len, SEG_HDR + NREC * FRAME + 4096, "policy %d: %zu bytes", p, len);
            for (size_t i = SEG_HDR + NREC * FRAME; i < len; i++)
                cr_assert_eq(b[i], 0, "byte %zu past the records is not zero", i);
        }
        /* Reopened: the records after the first NREC land over the zeros
         * (half of kI overwritten with new values); all of it recovers. */
        kv_store *s = dt_open(dir, policies[p]);
        for (int i = 0; i < NREC / 2; i++) {
            char k[4], v[VLEN];
            snprintf(k, sizeof k, "k%d", i);
            memset(v, 'A' + i, VLEN);
            cr_assert_eq(kv_set(s, k, 2, v, VLEN, NULL), KV_OK);
        }
        kv_close(s);
        s = dt_open(dir, policies[p]);
        cr_assert_eq(kv_revision(s), NREC + NREC / 2);
        for (int i = 0; i < NREC; i++) {
            char k[4], v[VLEN], want[VLEN];
            snprintf(k, sizeof k, "k%d", i);
            memset(want, i < NREC / 2 ? 'A' + i : 'a' + i, VLEN);
            size_t vl = 0;
            cr_assert_eq(kv_get_into(s, k, 2, v, sizeof v, &vl, NULL), KV_OK);
            cr_assert(vl == VLEN && memcmp(v, want, VLEN) == 0, "policy %d key %s", p, k);
        }
        kv_close(s);
        free(b);
        b = dt_read(seg, &len);
        size_t end = SEG_HDR + (NREC + NREC / 2) * FRAME;
        if (policies[p] != KV_FSYNC_NO && len > end + 100) {
            /* A byte flipped among the zeros: a torn tail, cut off at the
             * next open; no record is lost. */
            dt_clear(dir);
            b[end + 100] = 0x77;
            dt_write(seg, b, len);
            s = dt_open(dir, policies[p]);
            kv_recovery r;
            kv_recovery_read(s, &r, sizeof r);
            cr_assert_eq(kv_revision(s), NREC + NREC / 2);
            cr_assert_gt(r.torn_bytes, 0);
            kv_close(s);
        }
        free(b);
        free(seg);
    }
    dt_rmdir(dir);
    free(dir);
}

Test(durable, a_missing_segment_is_refused_not_skipped)
{
    char *dir = dt_tmpdir("gap");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.segment_bytes = 4096;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    char v[500] = {0};
    for (int i = 0; i < 40; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, v, sizeof v, NULL), KV_OK);
    kv_close(s);
    cr_assert_gt(dt_count(dir, "log-"), 3);
    /* Remove the second segment. */
    char *first = dt_find(dir, "log-");
    char path[512];
    snprintf(path, sizeof path, "%s/log-%016llx.kvl", dir, 0ull);
    DIR *d = opendir(dir);
    struct dirent *e;
    char names[64][32];
    int n = 0;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "log-", 4) == 0 && n < 64 && strlen(e->d_name) < 32)
            strcpy(names[n++], e->d_name);
    closedir(d);
    qsort(names, (size_t)n, 32, (int (*)(const void *, const void *))strcmp);
    snprintf(path, sizeof path, "%s/%s", dir, names[1]);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(kv_open_config(&c, &s), KV_CORRUPT);
    cr_assert(strstr(kv_last_error(), "missing"), "%s", kv_last_error());
    free(first);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, a_damaged_snapshot_is_refused_at_every_offset)
{
    char *dir = dt_tmpdir("snapflip");
    kv_store *s = dt_open(dir, KV_FSYNC_ALWAYS);
    for (int i = 0; i < NREC; i++) {
        char k[4], v[VLEN];
        snprintf(k, sizeof k, "k%d", i);
        memset(v, 'a' + i, VLEN);
        cr_assert_eq(kv_set(s, k, 2, v, VLEN, NULL), KV_OK);
    }
    cr_assert_eq(kv_snapshot(s), KV_OK);
    kv_close(s);
    char *snap = dt_find(dir, "snap-");
    cr_assert_not_null(snap);
    size_t len;
    unsigned char *b = dt_read(snap, &len);
    /* Alone (no log), the snapshot restores everything. */
    dt_clear(dir);
    dt_write(snap, b, len);
    cr_assert_eq(open_and_count(dir), NREC);
    int refused = 0, intact = 0;
    for (size_t at = 0; at < len; at++) {
        dt_clear(dir);
        b[at] ^= 0x08;
        dt_write(snap, b, len);
        b[at] ^= 0x08;
        int n = open_and_count(dir);
        DT_CHECK(n == -KV_CORRUPT || n == NREC, "byte %zu: got %d", at, n);
        refused += n == -KV_CORRUPT;
        intact += n == NREC; /* only padding bytes */
    }
    cr_assert_gt(refused, (int)len * 9 / 10);
    for (size_t cut = 0; cut < len; cut++) {
        dt_clear(dir);
        dt_write(snap, b, cut);
        int n = open_and_count(dir);
        DT_CHECK(n == -KV_CORRUPT, "snapshot cut at %zu: got %d", cut, n);
    }
    free(b);
    free(snap);
    dt_rmdir(dir);
    free(dir);
}

/* everysec: the writes return once written to the kernel, and a
 * background sync follows within about a second without further writes;
 * no: the log is never synced except at close. */
Test(durable, everysec_syncs_in_the_background_and_no_leaves_it_to_the_kernel)
{
    char *dir = dt_tmpdir("everysec");
    kv_store *s = dt_open(dir, KV_FSYNC_EVERYSEC);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, "v", 1, NULL), KV_OK);
    kv_metrics m = {0};
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.durable_revision, 100, "written to the kernel before returning");
    m = dt_wait_metric(s, offsetof(kv_metrics, log_syncs), 20);
    cr_assert_geq(m.log_syncs, 1, "a background fdatasync followed");
    kv_close(s);
    dt_clear(dir);

    s = dt_open(dir, KV_FSYNC_NO);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, "v", 1, NULL), KV_OK);
    usleep(1500000);
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.durable_revision, 100);
    cr_assert_eq(m.log_syncs, 0, "fsync=no never syncs the log while open");
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_NO);
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.keys, 100);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

/* Values full of zeros do not look like a write that never reached the
 * disk (frames are stored masked): damage inside such a record, with
 * acknowledged records after it, is refused, not cut off as a torn tail. */
Test(durable, damage_in_a_record_of_zero_bytes_is_refused_not_taken_for_a_torn_tail)
{
    char *dir = dt_tmpdir("zeros");
    kv_store *s = dt_open(dir, KV_FSYNC_ALWAYS);
    static char zeros[4096];
    for (int i = 0; i < 10; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, zeros, sizeof zeros, NULL), KV_OK);
    kv_close(s);
    char *seg = dt_find(dir, "log-");
    size_t len;
    unsigned char *b = dt_read(seg, &len);
    uint64_t plen; /* the first frame's payload length (little-endian) */
    memcpy(&plen, b + 32, sizeof plen);
    size_t frame = (16 + (size_t)plen + 7) / 8 * 8;
    cr_assert_geq(len, 32 + 10 * frame);
    b[32 + 2 * frame + 1000] ^= 0x01; /* inside record 3's value */
    dt_write(seg, b, len);
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    cr_assert_eq(kv_open_config(&c, &s), KV_CORRUPT, "%s", kv_last_error());
    free(b);
    free(seg);
    dt_rmdir(dir);
    free(dir);
}

Test(durable, snapshots_are_taken_automatically_by_time_if_anything_changed)
{
    char *dir = dt_tmpdir("interval");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.snapshot_log_bytes = 0;
    c.snapshot_interval_s = 1;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    cr_assert_eq(kv_set(s, "k", 1, "v", 1, NULL), KV_OK);
    kv_metrics m = dt_wait_metric(s, offsetof(kv_metrics, snapshots), 30);
    cr_assert_eq(m.snapshots, 1);
    cr_assert_eq(m.snapshot_revision, 1);
    /* nothing changed since: no more snapshots */
    usleep(2500000);
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.snapshots, 1, "an unchanged store is not snapshotted again");
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}
