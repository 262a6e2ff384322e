// Test helper: a test that needs root (namespaces, cgroups, changing user) skips with the reason
// when run without it, instead of failing on EPERM.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#define SN_SKIP_UNLESS_ROOT(why) \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: " << (why)
