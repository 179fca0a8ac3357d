# kv_add_suite_test(NAME SOURCES... [LIBS...] [LABELS...] [TIMEOUT s])
#
# A libkv test binary written with Criterion's Test()/cr_assert*. Normally
# it is a Criterion test (kv_add_criterion_test). Criterion cannot start
# under ThreadSanitizer (its sandbox's arena lands in TSan's shadow memory),
# so in KV_SANITIZE=thread builds the same sources are built against
# minicrit.h, a tiny stand-in that forks one process per test.
include_guard(GLOBAL)

function(kv_add_suite_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  set(support_dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(KV_SANITIZE STREQUAL "thread")
    add_executable(${name} ${T_SOURCES})
    target_compile_definitions(${name} PRIVATE KV_MINICRIT)
    target_include_directories(${name} PRIVATE ${support_dir})
    target_link_libraries(${name} PRIVATE ${T_LIBS})
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
  else()
    kv_add_criterion_test(${name} SOURCES ${T_SOURCES} LIBS ${T_LIBS}
      LABELS ${T_LABELS} TIMEOUT ${T_TIMEOUT})
    target_include_directories(${name} PRIVATE ${support_dir})
  endif()
endfunction()
