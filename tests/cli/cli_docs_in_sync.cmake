# docs/cli.md documents every option of every command: this runs each command's --help
# from the built binaries and fails, naming the command and the option, when
#   - an option the help prints (every --name in its output) is not written `--name` in
#     that command's section of docs/cli.md (its "## `prompthost CMD`" heading up to the
#     next "## ");
#   - an option row of a section's tables ("| `--name ...") is not in the command's help
#     (a removed or renamed option still documented);
#   - a plugin option that `prompthost train --plugin NAME --help` lists is not written
#     `name` in the "### `NAME`" section, or that section's table names an option the
#     plugin no longer has. (cmake -P script)
#   -DPROMPTHOST=path          the prompthost binary
#   -DVALIDATE=path            the prompthost-validate binary
#   -DDOC=path                 docs/cli.md
#   -DPLUGINS="a|b|c"          the method plugins whose options must be documented
cmake_minimum_required(VERSION 3.16)
unset(ENV{PROMPTHOST_PLUGIN_PATH})  # only the build's plugins
file(READ "${DOC}" doc)
set(problems "")
set(checked 0)

# The text of `doc` from the line `heading` to the next heading of the same level or
# higher (`stop`: "\n## " or "\n#"), or "" when the heading is missing.
function(doc_section heading stop out)
  string(FIND "${doc}" "\n${heading}\n" start)
  if(start EQUAL -1)
    set(${out} "" PARENT_SCOPE)
    return()
  endif()
  math(EXPR start "${start} + 1")
  string(SUBSTRING "${doc}" ${start} -1 rest)
  string(LENGTH "${heading}" skip)
  string(SUBSTRING "${rest}" ${skip} -1 body)
  string(FIND "${body}" "${stop}" end)
  if(NOT end EQUAL -1)
    string(SUBSTRING "${body}" 0 ${end} body)
  endif()
  set(${out} "${heading}${body}" PARENT_SCOPE)
endfunction()

# Checks one command: `label` (as the report names it), its --help command line
# (|-separated), its section heading in the doc ("": the whole doc, and no check of
# the doc's tables against this help).
function(check_command label help_command heading)
  string(REPLACE "|" ";" help_command "${help_command}")
  execute_process(COMMAND ${help_command} RESULT_VARIABLE code OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    set(problems "${problems}${label} --help: exit code ${code}\n${err}\n" PARENT_SCOPE)
    return()
  endif()
  if(heading STREQUAL "")
    set(section "${doc}")
    set(heading "whole")
  else()
    doc_section("${heading}" "\n## " section)
  endif()
  if(section STREQUAL "")
    set(problems "${problems}${label}: no section \"${heading}\" in ${DOC}\n" PARENT_SCOPE)
    return()
  endif()
  string(REGEX MATCHALL "--[a-z][a-z0-9-]*" options "${out}")
  list(REMOVE_DUPLICATES options)
  set(found_problems "")
  set(n 0)
  foreach(option ${options})
    math(EXPR n "${n} + 1")
    if(NOT section MATCHES "`${option}([^a-z0-9-]|$)")
      set(found_problems "${found_problems}${label}: option ${option} (in its --help) is not documented in the \"${heading}\" section of ${DOC}\n")
    endif()
  endforeach()
  # The other way round: every option row of the section's tables is a real option.
  set(rows "")
  if(NOT heading STREQUAL "whole")
    string(REGEX MATCHALL "\n\\| `-[^`]*`(, `--[a-z0-9-]+`)?" rows "${section}")
  endif()
  foreach(row ${rows})
    string(REGEX MATCH "--[a-z][a-z0-9-]*" option "${row}")
    if(option AND NOT out MATCHES "${option}([^a-z0-9-]|$)")
      set(found_problems "${found_problems}${label}: option ${option} is documented in ${DOC} but not in its --help (removed or renamed?)\n")
    endif()
  endforeach()
  if(NOT out MATCHES "Usage: ")
    set(found_problems "${found_problems}${label} --help: no \"Usage: \" line in its output\n")
  endif()
  set(problems "${problems}${found_problems}" PARENT_SCOPE)
  math(EXPR total "${checked} + ${n}")
  set(checked ${total} PARENT_SCOPE)
endfunction()

check_command("prompthost" "${PROMPTHOST}|--help" "")
foreach(command train eval generate inspect compose plugins bench tokenize serve)
  check_command("prompthost ${command}" "${PROMPTHOST}|${command}|--help"
                "## `prompthost ${command}`")
endforeach()
check_command("prompthost-validate" "${VALIDATE}|--help" "## `prompthost-validate`")

# The plugins' options: the lines after "Options of NAME (--set key=value):", one option
# a line, its name first.
string(REPLACE "|" ";" plugins "${PLUGINS}")
foreach(plugin ${plugins})
  execute_process(COMMAND ${PROMPTHOST} train --plugin ${plugin} --help
                  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(FIND "${out}" "\nOptions of ${plugin} " at)
  if(NOT code EQUAL 0 OR at EQUAL -1)
    string(APPEND problems "plugin ${plugin}: `prompthost train --plugin ${plugin} --help` does not list its options (exit code ${code})\n${out}${err}\n")
    continue()
  endif()
  string(SUBSTRING "${out}" ${at} -1 listing)
  string(REGEX MATCHALL "\n[a-z_][a-z0-9_]* \\(" names "${listing}")
  # The heading may carry the PEFT type after the name: "### `NAME` (PEFT_TYPE)".
  set(section "")
  string(REGEX MATCH "\n### `${plugin}`[^\n]*" heading "${doc}")
  string(STRIP "${heading}" heading)
  if(heading)
    doc_section("${heading}" "\n#" section)
  endif()
  if(section STREQUAL "")
    string(APPEND problems "plugin ${plugin}: no \"### `${plugin}`\" section in ${DOC}\n")
    continue()
  endif()
  set(plugin_options "")
  foreach(name ${names})
    string(REGEX REPLACE "^\n([a-z0-9_]+) \\($" "\\1" name "${name}")
    list(APPEND plugin_options ${name})
    math(EXPR checked "${checked} + 1")
    if(NOT section MATCHES "`${name}`")
      string(APPEND problems "plugin ${plugin}: option ${name} (in `prompthost train --plugin ${plugin} --help`) is not documented in the \"### `${plugin}`\" section of ${DOC}\n")
    endif()
  endforeach()
  if(NOT plugin_options)
    string(APPEND problems "plugin ${plugin}: no options found in its --help\n")
  endif()
  string(REGEX MATCHALL "\n\\| `[a-z0-9_]+` \\|" rows "${section}")
  foreach(row ${rows})
    string(REGEX REPLACE "^\n\\| `([a-z0-9_]+)` \\|$" "\\1" name "${row}")
    if(NOT name IN_LIST plugin_options)
      string(APPEND problems "plugin ${plugin}: option ${name} is documented in ${DOC} but the plugin does not list it (removed or renamed?)\n")
    endif()
  endforeach()
endforeach()

if(NOT problems STREQUAL "")
  message(FATAL_ERROR "docs/cli.md is out of sync with the commands:\n${problems}")
endif()
message(STATUS "ok: ${checked} options of the commands and plugins are documented in ${DOC}")
