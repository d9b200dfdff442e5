/*
 * testutil-check.c - the helpers for check(1) unit tests (see testutil.h).
 * Kept apart from testutil.c, which programs without check link too.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "testutil.h"

TCase *tu_add_tcase(Suite *s, const char *name, double timeout_s)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
