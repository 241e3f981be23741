// demangle: a C++ type name as the ABI mangles it (std::type_info::name()), made readable for
// panic reports and logs; the name itself if it cannot be demangled.
#pragma once

#include <string>

namespace colony::sched {

std::string demangle(const char* name);

}  // namespace colony::sched
