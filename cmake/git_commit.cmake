# Run at every build (the lethe_git_commit target in CMakeLists.txt): writes OUT, a header
# defining LETHE_GIT_COMMIT as the source tree's commit, and leaves it untouched when the commit
# has not changed, so a build that follows no new commit recompiles nothing.
#   cmake -DSOURCE_DIR=<tree> -DOUT=<header> -P git_commit.cmake
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE status)
if(NOT status EQUAL 0 OR NOT commit)
  set(commit unknown)
endif()
set(text "// Written at build time by cmake/git_commit.cmake.\n#define LETHE_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
  if(old STREQUAL text)
    return()
  endif()
endif()
file(WRITE ${OUT} "${text}")
