# colony_set_target_options(<target>): the one place that applies warnings and
# sanitizer flags to every colony target (libraries, tests, benchmarks, examples).
function(colony_set_target_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wno-missing-field-initializers)
  # Frames larger than a page touch each page on the way down, so a big frame near the end of a
  # fiber stack hits the guard below it instead of jumping over it (docs/design.md, "Stacks").
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-fstack-clash-protection COLONY_HAS_STACK_CLASH_PROTECTION)
  if(COLONY_HAS_STACK_CLASH_PROTECTION)
    target_compile_options(${target} PRIVATE -fstack-clash-protection)
  endif()
  if(COLONY_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(COLONY_SANITIZE STREQUAL "address+undefined")
    target_compile_options(${target} PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
    target_compile_definitions(${target} PUBLIC COLONY_ASAN=1)
  elseif(COLONY_SANITIZE STREQUAL "thread")
    target_compile_options(${target} PUBLIC -fsanitize=thread -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=thread)
    target_compile_definitions(${target} PUBLIC COLONY_TSAN=1)
  elseif(NOT COLONY_SANITIZE STREQUAL "")
    message(FATAL_ERROR "COLONY_SANITIZE must be empty, 'address+undefined' or 'thread', not '${COLONY_SANITIZE}'")
  endif()
endfunction()
