"""The pygls wiring of ``kql lsp``: LSP messages in, ``analysis`` results out.

Imported only by ``kql lsp`` once pygls is known to be installed. Every handler turns
an unexpected exception into an empty answer (and a log line on stderr): no document
text may take the server down.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from kql.cli.lsp import analysis
from kql.cli.lsp.analysis import Problem, SegmentsFile
from kql.cli.lsp.text import Lines
from kql.language.errors import KQLError, first_not_unicode

log = logging.getLogger("kql.lsp")
P = ParamSpec("P")
R = TypeVar("R")

_KINDS = {
    "keyword": lsp.CompletionItemKind.Keyword,
    "filter": lsp.CompletionItemKind.Function,
    "field": lsp.CompletionItemKind.Field,
    "sort_key": lsp.CompletionItemKind.Field,
    "operator": lsp.CompletionItemKind.Operator,
    "value": lsp.CompletionItemKind.Value,
    "id_kind": lsp.CompletionItemKind.Unit,
    "segment": lsp.CompletionItemKind.Reference,
    "punctuation": lsp.CompletionItemKind.Text,
}


def _clean(text: str) -> str:
    """Lone surrogates (not UTF-8) cannot be written to the client: show U+FFFD instead."""
    if first_not_unicode(text) is None:
        return text
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


class KQLServer(LanguageServer):
    def __init__(self, segments: str | None = None) -> None:
        from kql import __version__

        # Full sync: the client sends the whole text, so positions never drift.
        super().__init__("kql", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
        self.explicit_segments = segments
        self.texts: dict[str, str] = {}
        self.languages: dict[str, str] = {}

    # ---- documents ---------------------------------------------------------------------

    def lines(self, uri: str) -> Lines:
        encoding = str(getattr(self.workspace, "position_encoding", None) or "utf-16")
        return Lines(self.texts.get(uri, ""), encoding)

    def kind(self, uri: str) -> str:
        """``kql``, ``segments`` or ``other``: editors may send any plain-text or TOML file."""
        path = to_fs_path(uri) or uri
        if path.endswith(".toml"):
            named = {Path(p).resolve() for p in (self.explicit_segments, os.environ.get("KQL_SEGMENTS")) if p}
            is_segments = Path(path).name == "kql.toml" or Path(path).resolve() in named
            return "segments" if is_segments else "other"
        return "kql" if path.endswith(".kql") or self.languages.get(uri) == "kql" else "other"

    def segments_path(self, uri: str) -> Path | None:
        """``--segments``, else ``$KQL_SEGMENTS``, else the nearest kql.toml above the document."""
        explicit = self.explicit_segments or os.environ.get("KQL_SEGMENTS")
        if explicit:
            return Path(explicit)
        path = to_fs_path(uri)
        start = Path(path).parent if path else Path(self.workspace.root_path or os.getcwd())
        for directory in (start, *start.parents):
            candidate = directory / "kql.toml"
            if candidate.is_file():
                return candidate
        return None

    def segments_file(self, uri: str) -> SegmentsFile | None:
        if self.kind(uri) == "segments":
            return SegmentsFile(self.texts.get(uri, ""), to_fs_path(uri))
        path = self.segments_path(uri)
        if path is None:
            return None
        opened = self.texts.get(from_fs_path(str(path.resolve())) or "")
        if opened is not None:  # unsaved edits in the editor win over the disk
            return SegmentsFile(opened, str(path))
        try:
            return SegmentsFile(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as error:
            failed = SegmentsFile("", str(path))
            failed.error = KQLError("E012", f"cannot read segments file {path}: {error}", None, None)
            failed.segments = None
            return failed

    # ---- diagnostics -------------------------------------------------------------------

    def problems(self, uri: str) -> list[Problem]:
        kind = self.kind(uri)
        if kind == "other":
            return []
        if kind == "segments":
            file = self.segments_file(uri)
            return analysis.segments_problems(file) if file is not None else []
        return analysis.kql_problems(self.texts.get(uri, ""), self.segments_file(uri))

    def diagnostic(self, uri: str, problem: Problem) -> lsp.Diagnostic:
        message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
        related = [
            lsp.DiagnosticRelatedInformation(
                lsp.Location(from_fs_path(r.path) or r.path, self.file_range(r.path, r.start, r.end)),
                _clean(r.message),
            )
            for r in problem.related
        ]
        return lsp.Diagnostic(
            range=self.range(uri, problem.start, problem.end),
            message=_clean(message),
            severity=lsp.DiagnosticSeverity.Warning if problem.severity == "warning" else lsp.DiagnosticSeverity.Error,
            code=problem.code,
            source="kql",
            related_information=related or None,
            data={"fixes": list(problem.fixes)} if problem.fixes else None,
        )

    def publish(self, uri: str) -> None:
        try:
            diagnostics = [self.diagnostic(uri, p) for p in self.problems(uri)]
        except Exception:  # a bug must not cost the user the connection
            log.exception("kql lsp: diagnostics failed for %s", uri)
            diagnostics = []
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    def republish(self, changed: str) -> None:
        self.publish(changed)
        if self.kind(changed) == "segments":  # documents using its segments may change too
            for uri in list(self.texts):
                if uri != changed and self.kind(uri) == "kql":
                    self.publish(uri)

    # ---- positions ---------------------------------------------------------------------

    def range(self, uri: str, start: int, end: int) -> lsp.Range:
        lines = self.lines(uri)
        return lsp.Range(lsp.Position(*lines.position(start)), lsp.Position(*lines.position(max(start, end))))

    def file_range(self, path: str, start: int, end: int) -> lsp.Range:
        uri = from_fs_path(path) or path
        if uri in self.texts:
            return self.range(uri, start, end)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        lines = Lines(text, self.lines(uri).encoding)
        return lsp.Range(lsp.Position(*lines.position(start)), lsp.Position(*lines.position(end)))

    def offset(self, uri: str, position: lsp.Position) -> int:
        return self.lines(uri).offset(position.line, position.character)

    def query_at(self, uri: str, offset: int) -> tuple[str, int, Callable[[int, int], tuple[int, int]]] | None:
        """(query text, offset in it, query span → document span) at a document offset."""
        text = self.texts.get(uri, "")
        kind = self.kind(uri)
        if kind == "kql":
            return text, offset, lambda s, e: (s, e)
        if kind == "segments":
            file = self.segments_file(uri)
            found = file.string_at(offset) if file is not None else None
            if found is not None:
                string, inside = found
                return string.value, inside, string.to_file
        return None


def _safe(handler: Callable[P, R]) -> Callable[P, R | None]:
    """Log and answer nothing when a handler fails: the client gets an empty answer, not an error."""

    @functools.wraps(handler)
    def safe(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return handler(*args, **kwargs)
        except Exception:
            log.exception("kql lsp: %s failed", getattr(handler, "__name__", "a handler"))
            return None

    return safe


def build(segments: str | None = None) -> KQLServer:
    server = KQLServer(segments)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    @_safe
    def did_open(ls: KQLServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.texts[params.text_document.uri] = params.text_document.text
        ls.languages[params.text_document.uri] = params.text_document.language_id
        ls.republish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    @_safe
    def did_change(ls: KQLServer, params: lsp.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        for change in params.content_changes:
            if isinstance(change, lsp.TextDocumentContentChangePartial):  # a client ignoring Full sync
                start, end = ls.offset(uri, change.range.start), ls.offset(uri, change.range.end)
                text = ls.texts.get(uri, "")
                ls.texts[uri] = text[:start] + change.text + text[max(start, end) :]
            else:
                ls.texts[uri] = change.text
        ls.republish(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    @_safe
    def did_close(ls: KQLServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        was_segments = ls.kind(uri) == "segments"
        ls.texts.pop(uri, None)
        ls.languages.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        if was_segments:  # the file on disk counts again
            for other in list(ls.texts):
                ls.publish(other)

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["@", "("]))
    @_safe
    def completion(ls: KQLServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
        import kql

        uri = params.text_document.uri
        found = ls.query_at(uri, ls.offset(uri, params.position))
        if found is None:
            return None
        query, cursor, to_document = found
        file = ls.segments_file(uri)
        string = file.string_at(ls.offset(uri, params.position)) if ls.kind(uri) == "segments" and file else None
        items = []
        for number, item in enumerate(kql.complete(query, cursor, file.known() if file else None)):
            insert = string[0].encode(item.insert) if string is not None else item.insert
            if insert is None:  # cannot be written inside this kind of TOML string
                continue
            start, end = to_document(item.start, item.end)
            items.append(
                lsp.CompletionItem(
                    label=_clean(item.label),
                    kind=_KINDS.get(item.kind, lsp.CompletionItemKind.Text),
                    detail=_clean(item.description) or None,
                    sort_text=f"{number:05d}",  # keep kql's own order
                    filter_text=_clean(item.insert),
                    text_edit=lsp.TextEdit(ls.range(uri, start, end), _clean(insert)),
                )
            )
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    @_safe
    def hover(ls: KQLServer, params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        found = ls.query_at(uri, ls.offset(uri, params.position))
        if found is None:
            return None
        query, cursor, _ = found
        file = ls.segments_file(uri)
        text = analysis.hover(query, cursor, file.known() if file else None)
        if text is None:
            return None
        return lsp.Hover(lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=_clean(text)))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    @_safe
    def definition(ls: KQLServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        uri = params.text_document.uri
        found = ls.query_at(uri, ls.offset(uri, params.position))
        if found is None:
            return None
        name = analysis.segment_at(found[0], found[1])
        file = ls.segments_file(uri)
        if name is None or file is None:
            return None
        place = file.definition(name)
        if place is None:
            return None
        if ls.kind(uri) == "segments":
            return lsp.Location(uri, ls.range(uri, *place))
        assert file.path is not None
        target = from_fs_path(str(Path(file.path).resolve())) or file.path
        if target in ls.texts:
            return lsp.Location(target, ls.range(target, *place))
        lines = Lines(file.text, ls.lines(uri).encoding)
        start, end = (lsp.Position(*lines.position(o)) for o in place)
        return lsp.Location(target, lsp.Range(start, end))

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    @_safe
    def formatting(ls: KQLServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        import kql

        uri = params.text_document.uri
        if ls.kind(uri) != "kql":
            return None  # segments files: formatting their strings is left to `kql fmt`
        text = ls.texts.get(uri, "")
        if analysis.has_comment(text):
            ls.window_show_message(
                lsp.ShowMessageParams(lsp.MessageType.Info, "kql: not formatted: kql fmt would drop the comments")
            )
            return []
        try:
            formatted = kql.format(text)
        except KQLError:
            return []  # nothing canonical to offer for a query with errors; the diagnostics say why
        formatted += "\n" if text.endswith(("\n", "\r")) else ""
        if formatted == text:
            return []
        return [lsp.TextEdit(ls.range(uri, 0, len(text)), _clean(formatted))]

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix])
    )
    @_safe
    def code_action(ls: KQLServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
        uri = params.text_document.uri
        first, last = ls.offset(uri, params.range.start), ls.offset(uri, params.range.end)
        text = ls.texts.get(uri, "")
        actions = []
        for problem in ls.problems(uri):
            if not problem.fixes or problem.end < first or problem.start > last:
                continue
            diagnostic = ls.diagnostic(uri, problem)
            for fix in problem.fixes:
                replacement = fix
                if ls.kind(uri) == "segments":
                    found = ls.query_at(uri, problem.start)
                    file = ls.segments_file(uri)
                    place = file.string_at(problem.start) if file else None
                    encoded = place[0].encode(fix) if place is not None and found is not None else None
                    if encoded is None:
                        continue
                    replacement = encoded
                if text[problem.start : problem.end] == replacement:
                    continue
                edit = lsp.TextEdit(ls.range(uri, problem.start, problem.end), replacement)
                actions.append(
                    lsp.CodeAction(
                        title=f"Replace with '{fix}'",
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[diagnostic],
                        is_preferred=len(problem.fixes) == 1,
                        edit=lsp.WorkspaceEdit(changes={uri: [edit]}),
                    )
                )
        return actions

    return server


def serve(segments: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")  # stderr: stdout is the protocol
    build(segments).start_io()
    return 0
