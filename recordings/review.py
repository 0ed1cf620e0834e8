"""The quality team's review of a recording: scorings against the rubric, and timed comments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from config.database import Database
from rooms.errors import InvalidPayload
from rooms.identity import Identity
from rooms.models import utcnow

from .catalogue import RecordingView
from .models import RecordingComment, RecordingReview, RecordingScore
from .policies import RecordingPolicies


def check_scores(scores: Mapping[str, int], rubric: Sequence[str]) -> None:
    """
    Refuse a scoring unless it scores every criterion of the rubric, and no other, 1 to 5.

    :param scores: ``{criterion: score}``.
    :param rubric: The hospital's criteria.
    :raises InvalidPayload: with one detail per wrong criterion.
    """
    errors = [
        {"field": f"scores.{name}", "message": "not a criterion of this hospital's rubric"}
        for name in scores
        if name not in rubric
    ]
    errors += [
        {"field": f"scores.{name}", "message": "a score is needed"}
        for name in rubric
        if name not in scores
    ]
    errors += [
        {"field": f"scores.{name}", "message": "must be 1 to 5"}
        for name, value in scores.items()
        if not 1 <= value <= 5
    ]
    if errors:
        raise InvalidPayload("The scores do not match the rubric", details=errors)


class RecordingReviews:
    """
    Stores and lists the scorings and timed comments of recordings (callers authorise).

    :param database: Where they are stored.
    :param policies: The hospitals' policies, whose rubric a scoring follows.
    """

    def __init__(self, database: Database, policies: RecordingPolicies) -> None:
        self._database = database
        self._policies = policies

    async def add_review(
        self,
        recording: RecordingView,
        reviewer: Identity,
        scores: Mapping[str, int],
        comment: str,
    ) -> dict[str, Any]:
        """
        Store a scoring of a recording: one score (1–5) per criterion of its hospital's rubric,
        and a comment.

        :param recording: The recording.
        :param reviewer: Who scores it.
        :param scores: ``{criterion: score}``; every criterion of the rubric, no other.
        :param comment: The reviewer's comment.
        :raises InvalidPayload: when criteria are missing or unknown, or a score is out of range.
        """
        rubric = (await self._policies.policy(recording.hospital)).rubric
        check_scores(scores, rubric)
        review = RecordingReview(
            recording_id=recording.id,
            reviewer_sub=reviewer.sub,
            reviewer_name=reviewer.name,
            comment=comment,
            created_at=utcnow(),
        )
        async with self._database.transaction() as session:
            session.add(review)
            await session.flush()
            for criterion in rubric:
                session.add(
                    RecordingScore(
                        review_id=review.id, criterion=criterion, score=scores[criterion]
                    )
                )
        return _review_dict(review, [(c, scores[c]) for c in rubric])

    async def reviews(self, recording_id: str) -> list[dict[str, Any]]:
        """
        Every scoring of a recording, oldest first.

        :param recording_id: The recording.
        """
        async with self._database.sessions() as session:
            reviews = list(
                await session.scalars(
                    select(RecordingReview)
                    .where(RecordingReview.recording_id == recording_id)
                    .order_by(RecordingReview.created_at)
                )
            )
            scores = list(
                await session.scalars(
                    select(RecordingScore)
                    .where(RecordingScore.review_id.in_([r.id for r in reviews]))
                    .order_by(RecordingScore.id)
                )
            )
        return [
            _review_dict(r, [(s.criterion, s.score) for s in scores if s.review_id == r.id])
            for r in reviews
        ]

    async def add_comment(
        self, recording_id: str, author: Identity, offset: float, text: str
    ) -> dict[str, Any]:
        """
        Pin a comment to a time offset of a recording.

        :param recording_id: The recording.
        :param author: Who writes it.
        :param offset: Seconds from the start of the recording.
        :param text: The comment.
        """
        comment = RecordingComment(
            recording_id=recording_id,
            author_sub=author.sub,
            author_name=author.name,
            offset_seconds=offset,
            text=text,
            created_at=utcnow(),
        )
        async with self._database.transaction() as session:
            session.add(comment)
        return _comment_dict(comment)

    async def comments(self, recording_id: str) -> list[dict[str, Any]]:
        """
        The timed comments of a recording, in the order of their offsets.

        :param recording_id: The recording.
        """
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(RecordingComment)
                .where(RecordingComment.recording_id == recording_id)
                .order_by(RecordingComment.offset_seconds, RecordingComment.created_at)
            )
            return [_comment_dict(row) for row in rows]


def _review_dict(review: RecordingReview, scores: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "id": review.id,
        "reviewer": {"sub": review.reviewer_sub, "name": review.reviewer_name},
        "scores": [{"criterion": c, "score": s} for c, s in scores],
        "comment": review.comment,
        "created_at": review.created_at.isoformat(),
    }


def _comment_dict(comment: RecordingComment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "author": {"sub": comment.author_sub, "name": comment.author_name},
        "offset": comment.offset_seconds,
        "text": comment.text,
        "created_at": comment.created_at.isoformat(),
    }
