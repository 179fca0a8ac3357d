/*
 * help.c - kvcli's command table and every help text.
 *
 * The texts here, docs/kvcli.1 and the tests in tests/cli/ describe the same
 * behaviour; change them together.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "kvcli.h"

#define EXIT_CODES_TEXT                                                       \
    "Exit codes:\n"                                                           \
    "  0  success\n"                                                          \
    "  1  negative outcome: a key was not found (get, del, ttl, expire,\n"   \
    "     persist), --if-version did not match (set), an expire condition\n"  \
    "     or rollback's --if-unchanged-since did not hold, the compares\n"    \
    "     failed so the else-branch ran (txn), or flush was not confirmed\n"  \
    "  2  usage error (bad command, option or argument; unreadable file\n"  \
    "     or bad import input; a request over kvcli's --max-frame-size)\n"   \
    "  3  connection error: cannot connect, timeout, connection lost,\n"      \
    "     authentication failed or required, server busy, the server\n"       \
    "     does not speak kvd's protocol\n"                                     \
    "  4  server error: the server refused or failed the request\n"          \
    "  5  the revision asked for is compacted (its history is gone) or\n"    \
    "     not reached yet (get --rev, scan --rev, history, rollback,\n"      \
    "     compact, watch --from-rev); the message names the oldest or\n"     \
    "     latest revision\n"                                                  \
    "  6  watch lost events: the server's history no longer has what it\n"   \
    "     missed; the message names the revision to resume from\n"

static const char set_help[] =
    "Usage: kvcli set KEY VALUE [--if-version N] [--ttl DURATION]\n"
    "       kvcli set KEY --file PATH [--if-version N] [--ttl DURATION]\n"
    "       kvcli set KEY - [--if-version N] [--ttl DURATION]  (value from stdin)\n"
    "       kvcli set K1=V1 [K2=V2 ...] [--ttl DURATION]\n"
    "\n"
    "Sets keys. Several KEY=VALUE pairs are set atomically in one step:\n"
    "all of them or none. A pair's key ends at its first '='.\n"
    "\n"
    "Which form: the arguments are KEY=VALUE pairs only when every one of\n"
    "them contains '='. Otherwise exactly two arguments are KEY VALUE, used\n"
    "as they are ('kvcli set url http://x/?a=b', 'kvcli set a=b v' sets\n"
    "the key \"a=b\"); more than two arguments with '=' in some but not all\n"
    "is a usage error (exit 2). For a key and a value that both contain\n"
    "'=', give the value from stdin or a file:\n"
    "'printf %s c=d | kvcli set a=b -'.\n"
    "\n"
    "A value of\n"
    "'-' is read from standard input, --file reads it from a file: any\n"
    "bytes, so binary data round-trips with 'get --raw'.\n"
    "\n"
    "  --if-version N   compare-and-swap: set only if the key's current\n"
    "                   version is N (0: only if the key does not exist);\n"
    "                   otherwise nothing changes and the exit code is 1\n"
    "  --file PATH      read the value from PATH ('-' for stdin)\n"
    "  --ttl DURATION   the keys expire DURATION after the server sets them:\n"
    "                   a whole number with a unit ms, s, m or h (30s,\n"
    "                   1500ms, 5m, 2h; a bare number is seconds). With\n"
    "                   several pairs all get one expiry time, in the same\n"
    "                   atomic step. Without it a set key has no expiry\n"
    "                   (an earlier one is removed, as Redis's SET does).\n"
    "                   A bad duration is a usage error (exit 2).\n"
    "\n"
    "Prints \"OK (version V)\", V the new revision.\n"
    "JSON: {\"ok\":true,\"version\":V} ({\"ok\":true,\"keys\":N,\"version\":V}\n"
    "for pairs; {\"ok\":false,...,\"error\":\"version_mismatch\"} on a mismatch).\n"
    "\n"
    "Examples:\n"
    "  kvcli set greeting hello\n"
    "  kvcli set cake=🎂 horns=😈\n"
    "  kvcli set img --file photo.png\n"
    "  date | kvcli set now -\n"
    "  kvcli set counter 2 --if-version 7\n"
    "  kvcli set session abc --ttl 30m\n"
    "  kvcli set a=1 b=2 --ttl 10s\n";

static const char ttl_help[] =
    "Usage: kvcli ttl KEY\n"
    "\n"
    "Prints the time left before KEY expires, as \"1m 29.981s (89981 ms;\n"
    "expires at 2026-11-30T20:45:12.345Z)\" (the expiry time in UTC), or\n"
    "\"no expiry\" for a key without one (exit 0). A key that does not exist\n"
    "(or has expired) is an error on stderr with exit code 1.\n"
    "JSON: {\"key\":K,\"found\":true,\"expires\":true,\"ttl_ms\":N,\n"
    "\"expire_at_ms\":T} (T: Unix time in ms), {\"key\":K,\"found\":true,\n"
    "\"expires\":false}, or {\"key\":K,\"found\":false}.\n"
    "\n"
    "Examples:\n"
    "  kvcli set session abc --ttl 30m && kvcli ttl session\n";

static const char expire_help[] =
    "Usage: kvcli expire KEY DURATION [--nx | --xx | --gt | --lt]\n"
    "\n"
    "Makes an existing KEY expire DURATION from now (a whole number with a\n"
    "unit ms, s, m or h; a bare number is seconds), keeping its value; the\n"
    "key's version changes. Conditions, checked in the same atomic step\n"
    "(as Redis 7's EXPIRE options; no expiry counts as an infinite one):\n"
    "  --nx   only if the key has no expiry\n"
    "  --xx   only if it has one\n"
    "  --gt   only if the new expiry is later than the current one\n"
    "  --lt   only if it is earlier\n"
    "Prints \"OK (version V)\". Exit 1 when the key does not exist or a\n"
    "condition does not hold (nothing changes), 2 for a bad duration.\n"
    "JSON: {\"ok\":true,\"version\":V}, or {\"ok\":false,\"key\":K,\n"
    "\"error\":\"not_found\"|\"condition_failed\"}.\n"
    "\n"
    "Examples:\n"
    "  kvcli expire session 10m\n"
    "  kvcli expire session 1h --gt\n";

static const char persist_help[] =
    "Usage: kvcli persist KEY\n"
    "\n"
    "Removes KEY's expiry: it stays until deleted. Prints \"OK (version V)\"\n"
    "(V unchanged when the key had no expiry); exit 1 when the key does not\n"
    "exist. JSON as expire.\n";

static const char get_help[] =
    "Usage: kvcli get KEY [KEY ...] [--raw] [--rev N]\n"
    "\n"
    "Prints the value of one key, or \"key: value\" lines for several keys\n"
    "(read as one consistent snapshot). A missing key prints\n"
    "\"key: (not found)\" (several keys) or an error on stderr (one key);\n"
    "the exit code is then 1.\n"
    "\n"
    "  --rev N  the values as they were at revision N (the store right after\n"
    "           its change numbered N; kvd --history on, its default). A\n"
    "           revision whose history is compacted, or one not reached yet,\n"
    "           exits 5 naming the oldest or latest revision there is\n"
    "\n"
    "Text output escapes what a terminal would not show: \\\\, \\n, \\t, \\r\n"
    "and \\xNN for control bytes and bytes that are not valid UTF-8.\n"
    "Printable UTF-8 text passes through unchanged.\n"
    "\n"
    "  --raw   write the single value's exact bytes, no newline, no escaping\n"
    "\n"
    "JSON: one key gives {\"key\":K,\"found\":true,\"value\":V,\"version\":N};\n"
    "several keys give an array of those (\"found\":false without value).\n"
    "\n"
    "Examples:\n"
    "  kvcli get greeting\n"
    "  kvcli get cake horns\n"
    "  kvcli get --raw img > photo.png\n"
    "  kvcli get config --rev 42\n";

static const char history_help[] =
    "Usage: kvcli history KEY [--limit N] [--min-rev N] [--max-rev N]\n"
    "\n"
    "Lists the changes of KEY that kvd keeps (kvd --history on, its\n"
    "default: 100 earlier values per key, 64 MiB, an hour), newest first,\n"
    "one a line: \"REVISION VALUE  (version V, created at C)\" or\n"
    "\"REVISION (deleted)\". V counts the key's values since it was created\n"
    "at revision C. Values are escaped as by get.\n"
    "\n"
    "  --limit N     at most N changes, 1..10000 (default 100); page back\n"
    "                with --max-rev (the last revision listed - 1)\n"
    "  --min-rev N   only changes at revision N or later (default: as far\n"
    "                back as is kept; below that, exit 5)\n"
    "  --max-rev N   only changes at revision N or earlier (default: latest)\n"
    "\n"
    "JSON: {\"key\":K,\"compact_revision\":R,\"events\":[{\"revision\":N,\n"
    "\"deleted\":false,\"value\":V,\"create_revision\":C,\"version\":N,\n"
    "\"expire_at_ms\":T}, ...]} (a deletion: revision and deleted only).\n"
    "\n"
    "Examples:\n"
    "  kvcli history config\n"
    "  kvcli history config --limit 5 --json\n";

static const char rollback_help[] =
    "Usage: kvcli rollback KEY [KEY ...] --to-rev N [--if-unchanged-since M]\n"
    "       kvcli rollback --prefix P --to-rev N [--if-unchanged-since M]\n"
    "\n"
    "Restores the keys (or every key starting with P; an empty P is the\n"
    "whole store) to what they were at revision N - value and expiry, or\n"
    "absent - as ONE new atomic change with a new revision. History is not\n"
    "rewritten: a rollback can itself be rolled back. Keys already as they\n"
    "were at N are left alone. Prints \"OK, K keys restored to revision N\n"
    "(version V)\", V the rollback's revision.\n"
    "\n"
    "  --to-rev N                the revision to go back to (required)\n"
    "  --if-unchanged-since M    only if no key changed after revision M\n"
    "                            (say, the revision you looked at): else\n"
    "                            nothing changes and the exit code is 1\n"
    "  --prefix P                every key starting with P instead of KEYs\n"
    "\n"
    "On a cluster it runs on the leader (followed) and every node makes it.\n"
    "JSON: {\"ok\":true,\"changed\":K,\"version\":V} (V 0 when nothing\n"
    "changed); {\"ok\":false,\"error\":\"changed_since\"} on a mismatch.\n"
    "\n"
    "Examples:\n"
    "  kvcli rollback config --to-rev 42\n"
    "  kvcli rollback a b --to-rev 42 --if-unchanged-since 57\n"
    "  kvcli rollback --prefix user:7: --to-rev 42\n";

static const char compact_help[] =
    "Usage: kvcli compact REVISION\n"
    "\n"
    "Drops the history that only reads below REVISION need: from then on\n"
    "get --rev, scan --rev and history below it exit 5. REVISION must be\n"
    "above the current compaction revision and not above the latest one\n"
    "(else exit 5). kvd compacts on its own within its history bounds; this\n"
    "frees the memory now. On a cluster every node compacts alike.\n"
    "JSON: {\"ok\":true,\"compact_revision\":R}.\n"
    "\n"
    "Example:\n"
    "  kvcli compact 1000\n";

static const char watch_help[] =
    "Usage: kvcli watch KEY [--from-rev N] [--count N]\n"
    "       kvcli watch PREFIX --prefix [--from-rev N] [--count N]\n"
    "\n"
    "Follows the changes of KEY (or, with --prefix, of every key starting\n"
    "with PREFIX; an empty PREFIX is the whole store) and prints one line\n"
    "per change as it comes:\n"
    "  REV PUT key value\n"
    "  REV DEL key          (deleted, expired, evicted or rolled back)\n"
    "A change of several keys gives several lines with one revision.\n"
    "--from-rev N starts at revision N: first the changes kvd's history\n"
    "still has, then new ones (default: from the next change). Runs until\n"
    "Ctrl-C (exit 0) or --count N changes were printed.\n"
    "If kvcli falls so far behind that kvd's history no longer has what\n"
    "it missed, it says so on stderr with the revision to resume from\n"
    "(--from-rev) and exits 6; a --from-rev already compacted exits 5.\n"
    "Needs kvd with --history on (its default).\n"
    "JSON (--json): one object a line, {\"revision\":R,\"type\":\"PUT\",\n"
    "\"key\":K,\"value\":V,\"version\":N,\"create_revision\":C} (and\n"
    "\"expire_at_ms\" when the key has an expiry); {\"revision\":R,\n"
    "\"type\":\"DEL\",\"key\":K} for a removal.\n"
    "\n"
    "Examples:\n"
    "  kvcli watch config\n"
    "  kvcli watch user: --prefix --from-rev 1200 --json\n";

static const char del_help[] =
    "Usage: kvcli del KEY [KEY ...]\n"
    "       kvcli del --prefix PREFIX\n"
    "\n"
    "Deletes the keys atomically and says how many of them existed. The\n"
    "exit code is 1 if any named key did not exist.\n"
    "JSON: {\"deleted\":D,\"requested\":N,\"version\":V} (V 0 when nothing\n"
    "existed).\n"
    "\n"
    "--prefix PREFIX deletes every key starting with PREFIX and prints how\n"
    "many were deleted (exit 0, also when none matched). It is NOT atomic:\n"
    "it lists the keys a page of up to 50 at a time and deletes each page\n"
    "in one atomic step, so keys written meanwhile may survive, and a\n"
    "failure halfway leaves the earlier pages deleted. The prefix cannot be\n"
    "empty: use 'kvcli flush' to delete every key.\n"
    "JSON: {\"deleted\":D,\"prefix\":P}.\n"
    "\n"
    "Examples:\n"
    "  kvcli del greeting\n"
    "  kvcli del a b c\n"
    "  kvcli del --prefix session:\n";

static const char flush_help[] =
    "Usage: kvcli flush [--yes]\n"
    "\n"
    "Deletes every key, page by page as 'kvcli del --prefix' does: NOT\n"
    "atomic (keys written meanwhile may survive). On a terminal it first\n"
    "asks \"Delete all N keys? [y/N]\"; any answer but y leaves the store\n"
    "as it was (exit 1). Without a terminal it refuses (exit 2) unless\n"
    "--yes is given. Prints how many keys were deleted.\n"
    "JSON: {\"deleted\":D}.\n"
    "\n"
    "Examples:\n"
    "  kvcli flush\n"
    "  kvcli flush --yes\n";

static const char txn_help[] =
    "Usage: kvcli txn COMPARE... [--then OP...] [--else OP...]\n"
    "       kvcli txn < FILE        (line form, from standard input)\n"
    "       kvcli txn --file txn.json\n"
    "\n"
    "Runs one conditional transaction atomically: if every compare holds,\n"
    "the --then ops run, otherwise the --else ops. Each compare and each op\n"
    "is ONE argument (quote it).\n"
    "\n"
    "Compares:\n"
    "  version(KEY)=N    the key's version is N (0: the key is absent)\n"
    "  exists(KEY)       the key exists\n"
    "  absent(KEY)       the key does not exist (also !exists(KEY))\n"
    "  value(KEY)=VALUE  the key exists and its value is VALUE (the rest of\n"
    "                    the argument, verbatim)\n"
    "Ops (split into words like a shell line; quote values with spaces):\n"
    "  set KEY VALUE [--ttl DURATION]     get KEY     del KEY\n"
    "  --ttl: the key expires DURATION (units ms, s, m, h; a bare number is\n"
    "  seconds) after the server runs the transaction; without it the key\n"
    "  has no expiry afterwards. A bad DURATION is a usage error (exit 2,\n"
    "  nothing sent).\n"
    "\n"
    "Line form (like etcdctl txn): compares one per line, a blank line, the\n"
    "then-ops one per line, a blank line, the else-ops. '#' starts a\n"
    "comment line.\n"
    "\n"
    "JSON form (keys and values: a string or {\"base64\": \"...\"}):\n"
    "  {\"compare\": [{\"key\": \"k\", \"version\": 5},\n"
    "               {\"key\": \"a\", \"exists\": true},\n"
    "               {\"key\": \"b\", \"value\": \"x\"}],\n"
    "   \"then\": [{\"op\": \"set\", \"key\": \"k\", \"value\": \"v\", \"ttl\": \"30s\"},\n"
    "            {\"op\": \"del\", \"key\": \"a\"}, {\"op\": \"get\", \"key\": \"b\"}],\n"
    "   \"else\": [{\"op\": \"get\", \"key\": \"k\"}]}\n"
    "\n"
    "Prints \"THEN: compares held\" or \"ELSE: compares failed\" (with the\n"
    "commit's version if it wrote), then \"OP KEY: RESULT\" per op.\n"
    "Exit code 0 when the then-branch ran, 1 when the else-branch ran.\n"
    "A transaction with no compares and no ops is a usage error.\n"
    "JSON: {\"succeeded\":B,\"branch\":\"then\"|\"else\",\"version\":V,\n"
    "\"results\":[{\"op\":\"get\",\"key\":K,\"status\":\"ok\"|\"not_found\",\n"
    "\"value\":V,\"version\":N}, ...]}\n"
    "\n"
    "Examples:\n"
    "  kvcli txn 'version(k)=5' 'exists(a)' 'value(b)=x' \\\n"
    "      --then 'set k v' 'del a' 'get b' --else 'get k'\n"
    "  kvcli txn 'absent(lock)' --then 'set lock me --ttl 30s'\n"
    "  printf 'exists(a)\\n\\nget a\\n\\nset a 1\\n' | kvcli txn\n";

static const char scan_help[] =
    "Usage: kvcli scan [PREFIX] [--limit N] [--values] [--rev N]\n"
    "\n"
    "Lists the keys that start with PREFIX (all keys without one), one per\n"
    "line, escaped as by get. The order is the store's, not sorted; each key\n"
    "present for the whole scan is listed once.\n"
    "\n"
    "  --limit N   list at most N keys\n"
    "  --values    print \"key: value\" lines (without it, values are not\n"
    "              fetched: the server sends keys and versions only)\n"
    "  --rev N     the keys as they were at revision N: one consistent state,\n"
    "              every key of it listed once (exit 5 if compacted)\n"
    "\n"
    "JSON: [{\"key\":K,\"version\":N[,\"value\":V]}, ...]\n"
    "\n"
    "Examples:\n"
    "  kvcli scan user:\n"
    "  kvcli scan --limit 10 --values\n";

static const char export_help[] =
    "Usage: kvcli export [--prefix P] [--format json|bin] > FILE\n"
    "\n"
    "Writes every entry (or those whose key starts with P) to standard\n"
    "output, streaming, for moving data to another kvd ('kvcli import') or\n"
    "looking at everything. To read entries as text, 'kvcli scan --values'\n"
    "is handier.\n"
    "\n"
    "  --prefix P      only keys starting with P\n"
    "  --format json   JSON lines (the default): one entry per line,\n"
    "                  {\"key\":\"<base64>\",\"value\":\"<base64>\",\"version\":N},\n"
    "                  key and value always in standard base64 (RFC 4648,\n"
    "                  padded), version the key's version at export; a key\n"
    "                  with an expiry time also has \"expire_at_ms\":T (Unix\n"
    "                  time in ms) after version\n"
    "  --format bin    binary: \"KVEXPORT\", u32 format version 2, then per\n"
    "                  entry 'E', u32 key length, u32 value length, u64\n"
    "                  version, u64 expiry time (Unix ms, 0: none), key,\n"
    "                  value; last 'Z', u64 entry count (big-endian;\n"
    "                  refused on a terminal; version 1, without the\n"
    "                  expiry time, is still imported)\n"
    "\n"
    "Like scan it is not a point-in-time copy (that is 'kvcli backup'): an\n"
    "entry present for the whole export is written at least once; one\n"
    "written meanwhile may or may not be, and an entry may appear twice\n"
    "(import keeps the last). Each key's expiry time is read after its page\n"
    "(pipelined) and checked to belong to the value written; a key found\n"
    "deleted or expired by then is left out and counted. When stderr is a\n"
    "terminal a progress line shows entries, bytes, rate and ETA; at the\n"
    "end a summary goes to stderr: \"exported N entries (B bytes of keys\n"
    "and values; E with an expiry time) in S s\".\n"
    "If writing fails (disk full) the exit code is 2.\n"
    "\n"
    "Examples:\n"
    "  kvcli export > all.jsonl\n"
    "  kvcli export --prefix user: --format bin > users.kvx\n"
    "  kvcli export | jq -r '.key | @base64d'\n"
    "  kvcli --port 7380 export | kvcli --port 7381 import -\n";

static const char import_help[] =
    "Usage: kvcli import FILE [--batch N] [--format json|bin] [--dry-run]\n"
    "\n"
    "Reads entries written by 'kvcli export' from FILE ('-' for standard\n"
    "input; the format is recognised by its first byte) and sets them,\n"
    "streaming, in batches: each batch is one atomic multi-key set of up\n"
    "to N entries (default 50) and about 1 MiB, within --max-frame-size.\n"
    "Keys that exist are overwritten, other keys are left alone; versions\n"
    "are those of this store, not the file's. Expiry times are restored as\n"
    "they are (absolute times, not TTLs); an entry whose expiry time has\n"
    "passed (by this machine's clock) is skipped, leaving that key alone,\n"
    "and counted: \"skipped N entries whose expiry time had passed\".\n"
    "\n"
    "  --batch N       entries per atomic batch, 1-10000 (default 50)\n"
    "  --format F      fail unless the input is in format F (json, bin)\n"
    "  --dry-run       read and check the whole input, import nothing\n"
    "\n"
    "In JSON lines, blank lines are skipped and members other than \"key\",\n"
    "\"value\" and \"expire_at_ms\" are ignored. A bad entry (not JSON, no\n"
    "key, not base64, an empty key, an \"expire_at_ms\" that is not a whole\n"
    "number 1..2^52, a truncated binary file) stops the import with exit\n"
    "code 2 and an error naming its line (or record): the entries before it\n"
    "are imported, nothing from it on. A batch the server refuses (exit 4,\n"
    "e.g. a value over its limit) is not applied, and its lines are named;\n"
    "earlier batches stay. Use --dry-run first for all or nothing.\n"
    "\n"
    "When stderr is a terminal a progress line shows entries, bytes, rate\n"
    "and, for a file, the ETA. At the end: \"imported N entries (B bytes\n"
    "of keys and values) in S s\".\n"
    "JSON: {\"entries\":N,\"bytes\":B,\"batches\":K,\"expired\":X,\"seconds\":S}\n"
    "(with \"dry_run\":true for --dry-run).\n"
    "\n"
    "Examples:\n"
    "  kvcli import all.jsonl\n"
    "  kvcli import --dry-run users.kvx\n"
    "  zcat dump.jsonl.gz | kvcli import -\n";

static const char ping_help[] =
    "Usage: kvcli ping\n"
    "\n"
    "Checks that the server answers; prints \"PONG (T ms)\", the round trip\n"
    "in milliseconds to the microsecond (3 decimals).\n"
    "JSON: {\"ok\":true,\"rtt_ms\":T}, T rounded the same way.\n";

static const char version_help[] =
    "Usage: kvcli version\n"
    "       kvcli --version\n"
    "\n"
    "Prints kvcli's version and, if the server can be reached, the server's\n"
    "name, version and protocol version. An unreachable server is not an\n"
    "error here (exit code 0).\n"
    "JSON: {\"client\":V,\"library\":V,\"server\":{\"name\":N,\"version\":V,\n"
    "\"protocol\":P} or null}\n";

static const char metrics_help[] =
    "Usage: kvcli metrics\n"
    "\n"
    "Shows the store's metrics (keys and bytes stored, memory, revision,\n"
    "get/set/delete counts, CAS failures, transactions, index size) and the\n"
    "server's own metrics. Each line is named as in --json (snake_case, e.g.\n"
    "get_hits, bytes_in); byte counts of 1 KiB and more also show as KiB,\n"
    "MiB, ... The server's latency percentiles make one table, latency_us,\n"
    "one row per operation and the columns in order p50, p99, p99.9, in\n"
    "microseconds with one decimal.\n"
    "JSON: the server's map, e.g. {\"keys\":12,\"gets\":40,...,\n"
    "\"latency_p50_us\":{\"get\":3.84,...}}, fractions rounded to 0.001.\n";

static const char snapshot_help[] =
    "Usage: kvcli snapshot\n"
    "\n"
    "Asks kvd to take a snapshot of its store now (kvd must run with\n"
    "--data-dir). Waits until the snapshot file is complete and prints the\n"
    "revision it ends at and its file name in kvd's data directory. The file\n"
    "is a self-contained, consistent copy of the store: copy it elsewhere as\n"
    "a backup, and restore it with 'kv-check --restore FILE DIR'.\n"
    "JSON: {\"revision\":N,\"file\":\"snap-....kvs\"}\n";

static const char backup_help[] =
    "Usage: kvcli backup FILE\n"
    "\n"
    "Copies a consistent backup of kvd's store into FILE over the connection\n"
    "(like redis-cli --rdb or etcdctl snapshot save): kvd takes a snapshot\n"
    "(it must run with --data-dir), then its file is read in chunks into\n"
    "FILE.tmp, synced and renamed to FILE. Restore it with\n"
    "'kv-check --restore FILE DIR' and start kvd with --data-dir DIR.\n"
    "Exit codes: 0 done, 2 FILE cannot be written, 3 connection, 4 the server\n"
    "refused (e.g. in memory only) or a newer snapshot replaced this one\n"
    "while it was copied (run it again).\n"
    "JSON: {\"revision\":N,\"file\":F,\"bytes\":B}\n";

static const char cluster_help[] =
    "Usage: kvcli cluster [status]\n"
    "       kvcli cluster add ID HOST:PORT\n"
    "       kvcli cluster remove ID\n"
    "       kvcli cluster transfer [ID]\n"
    "\n"
    "A kvd cluster (docs/replication.md). status: the node's role, term,\n"
    "commit and applied index, and every member (id, role, raft address,\n"
    "where clients reach it; on the leader each member's match index and\n"
    "lag). add: a node started with --cluster-join and --node-id ID\n"
    "--raft-addr HOST:PORT joins; it becomes a voter once it has caught up.\n"
    "remove: the node leaves the cluster. transfer: leadership moves to ID\n"
    "(or to the most caught-up voter). Changes are made by the leader\n"
    "(kvcli follows it) and return once committed.\n"
    "Exit codes: 0 done, 2 usage, 3 connection, 4 refused (not a cluster\n"
    "node, no leader, unknown node).\n"
    "JSON: status as kvd reports it; changes {\"done\":SUB,\"node\":ID}\n";

static const char help_help[] =
    "Usage: kvcli help [COMMAND]\n"
    "\n"
    "Shows the overview, or a command's help (as 'kvcli COMMAND --help').\n"
    "At the prompt, 'help' alone lists the commands and the prompt's keys.\n";

const kvcli_command kvcli_commands[] = {
    {"set", kvcli_cmd_set, "set one key, several keys atomically, or CAS",
     set_help},
    {"get", kvcli_cmd_get, "print the values of keys", get_help},
    {"ttl", kvcli_cmd_ttl, "show the time left before a key expires", ttl_help},
    {"expire", kvcli_cmd_expire, "make a key expire after a duration", expire_help},
    {"persist", kvcli_cmd_persist, "remove a key's expiry", persist_help},
    {"del", kvcli_cmd_del, "delete keys atomically, or by prefix", del_help},
    {"history", kvcli_cmd_history, "list a key's earlier values, newest first", history_help},
    {"rollback", kvcli_cmd_rollback, "restore keys to a revision, as one new change",
     rollback_help},
    {"compact", kvcli_cmd_compact, "drop the history below a revision", compact_help},
    {"watch", kvcli_cmd_watch, "follow the changes of a key or a prefix", watch_help},
    {"flush", kvcli_cmd_flush, "delete every key (asks first)", flush_help},
    {"txn", kvcli_cmd_txn, "run a conditional transaction", txn_help},
    {"scan", kvcli_cmd_scan, "list keys by prefix", scan_help},
    {"export", kvcli_cmd_export, "write every entry (or a prefix) to stdout",
     export_help},
    {"import", kvcli_cmd_import, "set the entries of an export file, in batches",
     import_help},
    {"metrics", kvcli_cmd_metrics, "show store and server metrics",
     metrics_help},
    {"snapshot", kvcli_cmd_snapshot, "take a snapshot of kvd's store now", snapshot_help},
    {"backup", kvcli_cmd_backup, "copy a consistent backup of kvd's store into a file", backup_help},
    {"cluster", kvcli_cmd_cluster, "a cluster's members; add, remove, transfer leadership",
     cluster_help},
    {"ping", kvcli_cmd_ping, "check that the server answers", ping_help},
    {"version", kvcli_cmd_version, "show client and server versions",
     version_help},
    {"help", kvcli_cmd_help, "show help", help_help},
    {NULL, NULL, NULL, NULL},
};

/* Commands are matched in any case: "kvcli GET k" is "kvcli get k". */
const kvcli_command *kvcli_find_command(const char *name)
{
    for (const kvcli_command *c = kvcli_commands; c->name; c++)
        if (strcasecmp(c->name, name) == 0)
            return c;
    if (strcasecmp(name, "delete") == 0)
        return kvcli_find_command("del");
    return NULL;
}

/* Optimal string alignment distance, ignoring case: insertions, deletions,
 * substitutions and swaps of neighbours ("gte" -> "get") cost 1. Names
 * longer than the buffer are too far from every command to matter. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 32 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXLEN || lb >= MAXLEN)
        return MAXLEN;
    size_t d[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]);
            int cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

int kvcli_unknown_command(const char *name)
{
    /* At most 2 edits, and fewer than the word's length, so that "x" or
     * "frobnicate" get no far-fetched suggestion. */
    const char *best = NULL;
    size_t best_d = 3;
    for (const kvcli_command *c = kvcli_commands; c->name; c++) {
        size_t d = edit_distance(name, c->name);
        if (d < best_d && d < strlen(name)) {
            best = c->name;
            best_d = d;
        }
    }
    if (best != NULL)
        return kvcli_usage_err("unknown command '%s'; did you mean '%s'?",
                               name, best);
    return kvcli_usage_err("unknown command '%s' (try 'kvcli help')", name);
}

void kvcli_print_usage(FILE *f)
{
    fputs("Usage: kvcli [OPTIONS] COMMAND [ARGS...]\n"
          "       kvcli [OPTIONS]            (interactive prompt)\n"
          "\n"
          "Command-line client of kvd, the libkv server.\n"
          "\n"
          "Commands:\n", f);
    for (const kvcli_command *c = kvcli_commands; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fputs("\n"
          "Options (anywhere on the line; environment variable in brackets):\n"
          "  --host HOST       server host name or address [KV_HOST]\n"
          "                    (default 127.0.0.1)\n"
          "  --port PORT       server TCP port [KV_PORT] (default 7379)\n"
          "  --unix PATH       connect to a Unix socket instead [KV_UNIX]\n"
          "  --password PASS   authenticate with PASS [KV_PASSWORD]\n"
          "  --timeout SECS    bound on connecting and on each request, e.g.\n"
          "                    2.5 [KV_TIMEOUT] (default: 5 s to connect, no\n"
          "                    bound on requests)\n"
          "  --max-frame-size BYTES  largest request kvcli sends and reply\n"
          "                    it accepts (default 67174400: 64 MiB + 64\n"
          "                    KiB, as kvd's); a bigger request is refused\n"
          "                    before sending (exit 2)\n"
          "  --stale           a cluster: let the node asked answer reads\n"
          "                    from its own store, at once - possibly\n"
          "                    STALE (serializable reads; default: the\n"
          "                    leader answers, linearizable)\n"
          "  --retries N       a cluster: send a write whose outcome is\n"
          "                    unknown (lost leadership or connection)\n"
          "                    again, up to N times, with its request id,\n"
          "                    so it is applied once (default 0)\n"
          "  --endpoints LIST  a cluster: other nodes to try, in turn, when\n"
          "                    the one at --host/--port does not answer,\n"
          "                    HOST:PORT,HOST:PORT,... [KV_ENDPOINTS]. Each\n"
          "                    connect then learns the cluster's members\n"
          "                    from the node reached and tries them too, so\n"
          "                    the prompt given one node goes on when that\n"
          "                    node is lost (one-shot commands start from\n"
          "                    the list again)\n"
          "  --no-sync         with --endpoints: try only the nodes listed,\n"
          "                    do not learn the members\n"
          "  --json            machine-readable output: one JSON document\n"
          "                    per command on stdout; keys and values are\n"
          "                    strings when valid UTF-8 without NUL\n"
          "                    bytes, else\n"
          "                    {\"base64\": \"...\"}; an error is also\n"
          "                    {\"error\":{\"status\":S,\"message\":M},\n"
          "                    \"exit\":N} on stdout\n"
          "  -h, --help        show help (kvcli COMMAND --help for a\n"
          "                    command)\n"
          "  --version         same as the version command\n"
          "  --                end of options (for values starting with -)\n"
          "\n"
          "Without a command, kvcli reads commands: at a terminal with a\n"
          "prompt, line editing and history (~/.kvcli_history); otherwise one\n"
          "command per line from standard input, without a prompt. Quote\n"
          "arguments as in a shell. 'help' there is the prompt's short help;\n"
          "'quit' and 'exit' leave. Tab completes command names. A reconnect\n"
          "(kvd restarted) is announced on stderr. The exit code is then the\n"
          "last command's.\n"
          "\n"
          "Command names may be written in any case (kvcli GET k).\n"
          "Errors go to stderr as one line starting with \"kvcli: \".\n"
          "\n" EXIT_CODES_TEXT
          "\n"
          "Examples:\n"
          "  kvcli set greeting hello && kvcli get greeting\n"
          "  kvcli set cake=🎂 horns=😈 && kvcli get cake horns\n"
          "  kvcli --port 7380 --json metrics\n"
          "  kvcli txn 'absent(lock)' --then 'set lock me' --else 'get lock'\n"
          "\n"
          "See also kvcli(1), kvd(1).\n", f);
}

void kvcli_print_prompt_help(FILE *f)
{
    fputs("Commands (type them without 'kvcli'):\n", f);
    for (const kvcli_command *c = kvcli_commands; c->name; c++)
        if (strcmp(c->name, "help") != 0)
            fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fputs("\n"
          "  help COMMAND   that command's usage, options and examples\n"
          "  quit, exit     leave (also Ctrl-D)\n"
          "\n"
          "Quote arguments as in a shell. Options such as --json or --port\n"
          "apply to their line only. Tab completes command names; history is\n"
          "kept in ~/.kvcli_history.\n", f);
}

int kvcli_maybe_help(const kvcli_session *s, const char *cmd)
{
    if (!s->cfg.help)
        return 0;
    const kvcli_command *c = kvcli_find_command(cmd);
    fputs(c->help, stdout);
    fputs("\n" EXIT_CODES_TEXT, stdout);
    return 1;
}

int kvcli_cmd_help(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (a.npos == 0) {
        /* At the prompt, what matters there, not the command line's. */
        if (s->interactive)
            kvcli_print_prompt_help(stdout);
        else
            kvcli_print_usage(stdout);
    } else {
        const kvcli_command *c = kvcli_find_command(a.pos[0]);
        if (c == NULL) {
            rc = kvcli_unknown_command(a.pos[0]);
        } else {
            fputs(c->help, stdout);
            fputs("\n" EXIT_CODES_TEXT, stdout);
        }
    }
    kvcli_args_free(&a);
    return rc;
}
