#!/bin/sh
# Fails when a module includes what its layer may not use (STYLE.md "Layout").
root="$1"
bad=0
check() {
  dir="$1"; pattern="$2"
  hits=$(grep -nE "#include *[<\"]($pattern)" "$root/$dir"/*.h "$root/$dir"/*.cc 2>/dev/null)
  if [ -n "$hits" ]; then
    echo "forbidden include in $dir/:"; echo "$hits"; bad=1
  fi
}
check common 'uv\.h|llhttp|openssl/|rocksdb/|sys/socket\.h|netinet/|toml\+\+|cache/|server/|config/|catalog/|db/'
check config 'uv\.h|llhttp|openssl/|rocksdb/|cache/|server/|catalog/|db/'
check db     'uv\.h|llhttp|openssl/|sys/socket\.h|netinet/|arpa/|cache/|server/|config/|catalog/|toml\+\+'
check cache  'uv\.h|llhttp|openssl/|rocksdb/|sys/socket\.h|netinet/|arpa/|server/|config/|catalog/|toml\+\+'
check catalog 'uv\.h|llhttp|openssl/ssl\.h|openssl/tls|rocksdb/|sys/socket\.h|netinet/|arpa/|server/|config/|toml\+\+'
check catalog/apple 'uv\.h|llhttp|openssl/ssl\.h|openssl/tls|rocksdb/|sys/socket\.h|netinet/|arpa/|server/|config/|toml\+\+'
# Only db/ talks to RocksDB: everyone else (cache/, a future catalog/) goes
# through db/database.h.
for f in $(grep -lE '#include *[<"]rocksdb/' "$root"/*/*.h "$root"/*/*.cc "$root"/*/*/*.h "$root"/*/*/*.cc 2>/dev/null); do
  case "$f" in
    "$root"/db/*) ;;
    *) echo "rocksdb included outside db/: $f"; bad=1 ;;
  esac
done
[ $bad -eq 0 ] && echo "layout ok"
exit $bad
