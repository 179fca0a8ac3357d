#!/bin/sh
# man_page.sh - every option that `kvd --help` prints must be documented in
# docs/kvd.8 (as a .B/.BI line of the OPTIONS section), and the page must
# list no option kvd does not have. Usage: man_page.sh KVD KVD_8
set -u
kvd=$1
page=$2
help_opts=$("$kvd" --help | sed -n 's/^  \(--[a-z-]*\).*/\1/p' | sort)
page_opts=$(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' "$page" |
    sed -n 's/^\.BI\{0,1\} "\{0,1\}\(\\-\\-[a-z\\-]*\).*/\1/p' | sed 's/\\-/-/g' | sort)
[ -n "$help_opts" ] || { echo "no options in kvd --help"; exit 1; }
if [ "$help_opts" != "$page_opts" ]; then
    echo "kvd --help and $page list different options"
    echo "help:" $help_opts
    echo "page:" $page_opts
    exit 1
fi
echo "$(echo "$help_opts" | wc -l) options, all documented"
