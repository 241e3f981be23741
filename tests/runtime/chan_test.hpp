// What the channel tests (colony_chan_test: chan_test.cpp, chan_select_test.cpp,
// chan_nil_test.cpp) share: the Channels suite, run with 1, 2, 4 and 8 processors
// (instantiated once, in chan_test.cpp).
#pragma once

#include "test_util.hpp"

namespace colony::testing {

class Channels : public ProcsTest {};

}  // namespace colony::testing
