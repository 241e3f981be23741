#!/bin/sh
# The layering rule of docs/design.md ("Layers"), checked with grep. Exit status 1 on a violation.
#
#   scheduler/  colony::scheduler  its include/colony/sched/ headers are the interface the layers
#                                  above may use; scheduler/src is private to it
#   runtime/    colony::runtime    uses the scheduler through colony/sched/* only
#   pool/       colony::pool       uses the layers below through their include/ headers only
#   hooks/      colony::hooks      the interposed socket and sleep calls: uses the scheduler
#                                  through colony/sched/* only (it may use the runtime's public
#                                  headers, not its sources); nothing below includes it
#
# 1. Outside scheduler/ (and the scheduler's own tests), no file includes a scheduler/src header
#    and no CMakeLists.txt puts scheduler/src on an include path.
#    Likewise for runtime/src: outside runtime/, no file includes one of its private headers and
#    no CMakeLists.txt puts runtime/src on an include path (the pool uses the runtime's API).
# 2. No layer includes a header of a layer above it: scheduler/ includes no colony/ header other
#    than colony/sched/*; runtime/ includes no colony/pool header.
# 3. Only the scheduler links Boost.Context.
# 4. The core does not depend on Asio, Beast or OpenSSL: only the optional glue headers
#    runtime/include/colony/net/asio.hpp and tls.hpp include them (targets colony::asio and
#    colony::tls), and colony_runtime links neither.
# 5. hooks/ includes no private header of another layer (runtime/src, pool/src, scheduler/src)
#    and no pool header; no other layer includes colony/hooks.hpp.
set -u
cd "$(dirname "$0")/.."

fail=0
report() {
  echo "layer rule: $1" >&2
  fail=1
}

# Basenames of the scheduler's private headers, as an extended-regex alternation.
private=$(cd scheduler/src && ls ./*.hpp 2>/dev/null | sed 's|^\./||; s/\./\\./g' | paste -sd'|' -)
if [ -n "$private" ]; then
  hits=$(grep -rnE "#include [\"<]($private)[\">]" runtime pool hooks examples bench 2>/dev/null)
  [ -n "$hits" ] && report "a scheduler/src header included outside scheduler/:
$hits"
fi
hits=$(grep -nE 'scheduler/src' runtime/CMakeLists.txt pool/CMakeLists.txt hooks/CMakeLists.txt examples/CMakeLists.txt 2>/dev/null)
[ -n "$hits" ] && report "scheduler/src on an include path outside scheduler/:
$hits"

# The runtime's private headers (sync/sync_detail.hpp, net/socket.hpp, context_wait.hpp, ...).
rprivate=$(cd runtime/src && find . -name '*.hpp' | sed 's|^\./||; s/\./\\./g' | paste -sd'|' -)
if [ -n "$rprivate" ]; then
  hits=$(grep -rnE "#include [\"<]($rprivate)[\">]" pool examples bench 2>/dev/null)
  [ -n "$hits" ] && report "a runtime/src header included outside runtime/:
$hits"
fi
hits=$(grep -nE 'runtime/src' pool/CMakeLists.txt examples/CMakeLists.txt 2>/dev/null)
[ -n "$hits" ] && report "runtime/src on an include path outside runtime/:
$hits"

hits=$(grep -rnE '#include [<"]colony/' scheduler | grep -vE '#include [<"]colony/sched/')
[ -n "$hits" ] && report "the scheduler includes a header of a layer above it:
$hits"
hits=$(grep -rnE '#include [<"]colony/pool' runtime)
[ -n "$hits" ] && report "the runtime includes a header of the pool:
$hits"

hits=$(grep -nE 'Boost::context' runtime/CMakeLists.txt pool/CMakeLists.txt hooks/CMakeLists.txt 2>/dev/null)
[ -n "$hits" ] && report "only the scheduler links Boost.Context:
$hits"

hits=$(grep -rnE '#include [<"](boost/asio|boost/beast|openssl/)' scheduler runtime pool |
  grep -vE '^runtime/include/colony/net/(asio|tls)\.hpp:')
[ -n "$hits" ] && report "Asio, Beast or OpenSSL included outside colony/net/asio.hpp and tls.hpp:
$hits"
hits=$(grep -nE 'target_link_libraries\((colony_runtime|colony_scheduler)[^)]*(OpenSSL|Boost::headers)' \
  runtime/CMakeLists.txt scheduler/CMakeLists.txt)
[ -n "$hits" ] && report "the core links Asio's or OpenSSL's targets:
$hits"
if [ -d hooks ]; then
  hits=$(grep -nE '(runtime|pool)/src' hooks/CMakeLists.txt)
  [ -n "$hits" ] && report "another layer's private sources on the hooks' include path:
$hits"
  hits=$(grep -rnE '#include [<"]colony/pool' hooks)
  [ -n "$hits" ] && report "the hooks include a header of the pool:
$hits"
  hits=$(grep -rnE '#include [<"]colony/hooks' scheduler runtime pool)
  [ -n "$hits" ] && report "a lower layer includes the hooks:
$hits"
fi

[ "$fail" -eq 0 ] && echo "layer rule: ok"
exit "$fail"
