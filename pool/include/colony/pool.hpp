// <colony/pool.hpp>: the ants-style pool of worker fibers (target colony::pool; docs/pool.md).
//   colony::Pool, colony::PoolWithFunc<Arg>        pool/pool.hpp
//   colony::MultiPool, colony::MultiPoolWithFunc   pool/multi_pool.hpp
//   colony::Batch<R>                               pool/batch.hpp
//   colony::pool_errc                              pool/errors.hpp
#pragma once

#include "colony/pool/batch.hpp"
#include "colony/pool/errors.hpp"
#include "colony/pool/multi_pool.hpp"
#include "colony/pool/pool.hpp"
