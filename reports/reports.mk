# Report targets (make compare): owned by reports/.
#
#   make compare TARGETS="reference nginx nginx-stream haproxy apache" [REPORT_DIR=...]
#       runs `make conformance TARGET=t REPORT_DIR=$(REPORT_DIR)/t` for each
#       target in turn (one that cannot run becomes a column of `error` with
#       its reason) and writes compare.json, compare.md and compare.html into
#       REPORT_DIR. A target may name its binary: TARGETS="nginx=$PWD/objs/nginx".
#   make compare RESULTS=dir/ [REPORT_DIR=...]
#       merges result files made elsewhere (CI jobs, SHARD=k/n runs): every
#       *.json under dir/; shards of one target become one column.
#   make compare RESULTS=dir/ COMPARE_BASELINE=old/compare.json
#       the same, but the exit status is 1 only for a cell that is fail or
#       error and was not in the baseline comparison (the CI gate;
#       compare.baseline.md lists them). docs/ci-matrix.yml uses it.
#   make report RESULT=file.json
#       re-writes the JUnit, Markdown and HTML next to one result file.
#
# SCENARIOS, SHARD, KEEP and STRICT are passed on to each conformance run.
TARGETS ?= reference nginx
RESULTS ?=
RESULT  ?=

.PHONY: compare report
compare: all
	PYTHONPATH=reports $(PYTHON) -m uptls_reports compare --report-dir='$(REPORT_DIR)' \
	  $(if $(RESULTS),--results $(RESULTS),--targets='$(TARGETS)') \
	  $(if $(SCENARIOS),--make-arg='SCENARIOS=$(SCENARIOS)') \
	  $(if $(SHARD),--make-arg='SHARD=$(SHARD)') \
	  $(if $(KEEP),--make-arg='KEEP=$(KEEP)') $(if $(STRICT),--make-arg='STRICT=$(STRICT)') \
	  $(if $(COMPARE_BASELINE),--baseline='$(COMPARE_BASELINE)')

report:
	PYTHONPATH=reports $(PYTHON) -m uptls_reports render '$(RESULT)'
