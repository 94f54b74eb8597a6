# The example programs: shipped by the -dev/-devel packages with a Makefile
# that builds them through pkg-config, and built and run here by make check
# (against the build tree's library) so that they always compile and work.
EXAMPLES = examples/put_get examples/batch examples/zero_copy
check_PROGRAMS += $(EXAMPLES)
TESTS += $(EXAMPLES)
examples_put_get_SOURCES = examples/put_get.c
examples_put_get_LDADD = lib/libdaxkv.la
examples_batch_SOURCES = examples/batch.c
examples_batch_LDADD = lib/libdaxkv.la
examples_zero_copy_SOURCES = examples/zero_copy.c
examples_zero_copy_LDADD = lib/libdaxkv.la
# As a user's build: C99, warnings are errors.
examples_put_get_CFLAGS = $(AM_CFLAGS) -std=c99 -Werror
examples_batch_CFLAGS = $(AM_CFLAGS) -std=c99 -Werror
examples_zero_copy_CFLAGS = $(AM_CFLAGS) -std=c99 -Werror
EXTRA_DIST += examples/Makefile examples/README.md
