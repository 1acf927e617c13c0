# Runs a command and checks its exit code and what it printed (cmake -P script).
#   -DCOMMAND="exe|arg|arg..."   the command, arguments separated by | (a ; would split
#                                the add_test argument)
#   -DEXPECT_CODE=N              the exit code it must return
#   -DEXPECT_STDOUT=regex        optional: stdout must match
#   -DEXPECT_STDERR=regex        optional: stderr must match
#   -DTOUCH=path                 optional: an empty file to create first
string(REPLACE "|" ";" command "${COMMAND}")
if(DEFINED TOUCH)
  get_filename_component(touch_dir "${TOUCH}" DIRECTORY)
  file(MAKE_DIRECTORY "${touch_dir}")
  file(WRITE "${TOUCH}" "")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(report "command: ${command}\nexit code: ${code}\nstdout:\n${out}\nstderr:\n${err}")
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "expected exit code ${EXPECT_CODE}\n${report}")
endif()
if(DEFINED EXPECT_STDOUT AND NOT out MATCHES "${EXPECT_STDOUT}")
  message(FATAL_ERROR "stdout does not match '${EXPECT_STDOUT}'\n${report}")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}'\n${report}")
endif()
message(STATUS "ok: exit ${code}\n${out}${err}")
