/*
 * A PostgreSQL module for redveil's Redshift-like test cluster: Redshift's session setting
 * enable_result_cache_for_session, which redveil turns off on every pooled connection. A
 * setting without a dot in its name can only come from a loaded module. Built and loaded by
 * src/cluster/redshift_like.rs; never part of a cluster redveil fronts.
 */
#include "postgres.h"
#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

static bool enable_result_cache_for_session = true;

void _PG_init(void);

void
_PG_init(void)
{
	DefineCustomBoolVariable("enable_result_cache_for_session",
							 "Stands in for Redshift's result cache switch.",
							 NULL, &enable_result_cache_for_session, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}
