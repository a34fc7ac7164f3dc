"""BuildStudies stage: records -> one row per study, by Beam combines, written as Parquet under studies/."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam

from transforms.output_paths import studies_dir
from transforms.records import ParquetBundleWriter
from transforms.study_schema import STUDY_SCHEMA
from transforms.study_summary import StudyAccumulator, add_record, merge, study_row


class _RecordsToStudy(beam.CombineFn):
    """Records of one study -> its StudyAccumulator."""

    def __init__(self, abnormal_class: int) -> None:
        self._abnormal_class = abnormal_class

    def create_accumulator(self) -> StudyAccumulator:
        return StudyAccumulator()

    def add_input(self, accumulator: StudyAccumulator, record: dict[str, Any]) -> StudyAccumulator:
        return add_record(accumulator, record, self._abnormal_class)

    def merge_accumulators(self, accumulators: Iterable[StudyAccumulator]) -> StudyAccumulator:
        return merge(list(accumulators))

    def extract_output(self, accumulator: StudyAccumulator) -> StudyAccumulator:
        return accumulator


class _MergeStudies(beam.CombineFn):
    """Partial StudyAccumulators of one study (ok side, error side) -> one."""

    def create_accumulator(self) -> StudyAccumulator:
        return StudyAccumulator()

    def add_input(self, accumulator: StudyAccumulator, partial: StudyAccumulator) -> StudyAccumulator:
        return merge([accumulator, partial])

    def merge_accumulators(self, accumulators: Iterable[StudyAccumulator]) -> StudyAccumulator:
        return merge(list(accumulators))

    def extract_output(self, accumulator: StudyAccumulator) -> StudyAccumulator:
        return accumulator


def _keyed_by_study(record: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    # Images without a study (a CSV manifest without study_id) belong to no study row; the report
    # counts them.
    if record.get("study_id") is not None:
        yield record["study_id"], record


class BuildStudies(beam.PTransform):
    """(ok records, error records) -> study rows, written to `<output>/studies/`; returns the rows.

    Each side is combined per study where it is made, then the two small keyed collections are
    flattened and merged: a Flatten of the full record collections would pass every record through
    the local runner's launching process (see WriteRecords).
    """

    def __init__(self, output_dir: str, abnormal_class: int, study_threshold: float, run_id: str) -> None:
        super().__init__()
        self._output_dir = output_dir
        self._abnormal_class = abnormal_class
        self._study_threshold = study_threshold
        self._run_id = run_id

    def expand(self, records: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        ok_records, error_records = records
        partials = [
            side
            | f"KeyByStudy{name}" >> beam.FlatMap(_keyed_by_study)
            | f"CombineStudy{name}" >> beam.CombinePerKey(_RecordsToStudy(self._abnormal_class))
            for name, side in (("Ok", ok_records), ("Errors", error_records))
        ]
        threshold, run_id = self._study_threshold, self._run_id
        rows = (
            partials
            | "FlattenStudyParts" >> beam.Flatten()
            | "MergeStudyParts" >> beam.CombinePerKey(_MergeStudies())
            | "StudyRows" >> beam.MapTuple(lambda study, acc: study_row(study, acc, threshold, run_id))
        )
        # Study rows are few and small: one file per bundle whatever its size.
        writer = ParquetBundleWriter(studies_dir(self._output_dir), "part", rows_per_file=2**31, schema=STUDY_SCHEMA)
        rows | "WriteStudies" >> beam.ParDo(writer)
        return rows
