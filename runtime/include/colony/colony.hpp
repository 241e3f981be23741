// <colony/colony.hpp>: everything the runtime offers (colony::runtime). The pool, a layer above
// it, has its own umbrella header in pool/include (the pool header of the colony directory).
#pragma once

#include "colony/blocking.hpp"
#include "colony/chan.hpp"
#include "colony/context.hpp"
#include "colony/debug.hpp"
#include "colony/future.hpp"
#include "colony/go.hpp"
#include "colony/net.hpp"
#include "colony/run.hpp"
#include "colony/select.hpp"
#include "colony/stats.hpp"
#include "colony/time.hpp"
#include "colony/sync.hpp"
#include "colony/this_fiber.hpp"
#include "colony/sched/config.hpp"

