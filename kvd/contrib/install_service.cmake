# install_service.cmake - run by `cmake --install` (see kvd/src/CMakeLists.txt):
# writes kvd.service from kvd.service.in with this install's paths, and puts
# the sample kvd.conf where that unit reads it, keeping a kvd.conf that is
# already there (an operator's edits outlive a reinstall).
#
# Paths are worked out here, at install time, not when configuring: then
# `cmake --install build --prefix DIR` (and DESTDIR) gets a unit that runs
# DIR's kvd with DIR's config. Relative directories are under the prefix,
# except the config directory, which follows GNUInstallDirs: prefix /usr
# -> /etc, /opt/NAME -> /etc/opt/NAME.
#
# Inputs: KVD_CONTRIB (this folder), KVD_WORK (a build directory for the
# generated unit), KVD_BINDIR, KVD_SYSCONFDIR, KVD_UNITDIR.

function(kvd_under_prefix out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  elseif(CMAKE_INSTALL_PREFIX STREQUAL "/")
    set(${out} "/${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

kvd_under_prefix(bindir "${KVD_BINDIR}")
kvd_under_prefix(unitdir "${KVD_UNITDIR}")
if(IS_ABSOLUTE "${KVD_SYSCONFDIR}")
  set(sysconfdir "${KVD_SYSCONFDIR}")
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/usr/?$")
  set(sysconfdir "/${KVD_SYSCONFDIR}")
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/opt/(.*)")
  set(sysconfdir "/${KVD_SYSCONFDIR}/opt/${CMAKE_MATCH_1}")
else()
  kvd_under_prefix(sysconfdir "${KVD_SYSCONFDIR}")
endif()
string(REGEX REPLACE "/+$" "" sysconfdir "${sysconfdir}")

set(KVD_UNIT_BINDIR "${bindir}")
set(KVD_UNIT_CONFDIR "${sysconfdir}/kvd")
# one file per prefix: two installs of one build may run at once (tests)
string(MD5 tag "${CMAKE_INSTALL_PREFIX}")
set(unit "${KVD_WORK}/kvd.service.${tag}/kvd.service")
configure_file("${KVD_CONTRIB}/kvd.service.in" "${unit}" @ONLY)
file(INSTALL DESTINATION "${unitdir}" TYPE FILE FILES "${unit}")

if(EXISTS "$ENV{DESTDIR}${KVD_UNIT_CONFDIR}/kvd.conf")
  message(STATUS "Keeping: $ENV{DESTDIR}${KVD_UNIT_CONFDIR}/kvd.conf (the new sample is in the doc directory)")
else()
  file(INSTALL DESTINATION "${KVD_UNIT_CONFDIR}" TYPE FILE FILES "${KVD_CONTRIB}/kvd.conf")
endif()
