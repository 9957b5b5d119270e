"""A minimal fake Hugging Face Hub for model repositories, enough for huggingface_hub's downloads.

It serves exactly what huggingface_hub 2.x calls for `snapshot_download(repo, local_dir=...)` and
`hf_hub_download(repo, file, local_dir=...)` of a model repo, over plain HTTP:

  GET  /api/models/{repo}/revision/{rev}     repo_info(): {"id", "sha", "siblings"}; snapshot_download reads `sha`
  GET  /api/models/{repo}/tree/{sha}         list_repo_tree(recursive=True): [{"type", "path", "size", "oid"}]
                                             (one page: no `Link: rel="next"` header)
  HEAD /{repo}/resolve/{rev}/{path}          get_hf_file_metadata(): X-Repo-Commit, ETag, Content-Length
  GET  /{repo}/resolve/{rev}/{path}          http_get(): the bytes

`rev` may be "main" or the repo's commit sha (snapshot_download pins the files to the sha).
No X-Xet-* headers or `xetHash` fields are sent, so the client uses the plain HTTP path even with hf_xet
installed, and files are served directly (no redirect to a CDN).
Errors carry the `X-Error-Code` the real Hub sends (RepoNotFound, RevisionNotFound, EntryNotFound),
which huggingface_hub turns into RepositoryNotFoundError, RevisionNotFoundError and RemoteEntryNotFoundError.

`build_fake_hub({repo_id: {path: bytes}})` returns the app; `app.state.requests` lists every request
as (method, path), e.g. ("GET", "/Systran/faster-whisper-base/resolve/<sha>/model.bin").
"""

from __future__ import annotations

import hashlib

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def commit_sha(files: dict[str, bytes]) -> str:
    """A stable 40-hex commit id for a repo's contents."""
    digest = hashlib.sha1()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def build_fake_hub(repos: dict[str, dict[str, bytes]]) -> Starlette:
    shas = {repo_id: commit_sha(files) for repo_id, files in repos.items()}
    requests: list[tuple[str, str]] = []

    def error(code: str, message: str, **headers: str) -> Response:
        return JSONResponse({"error": message}, status_code=404,
                            headers={"X-Error-Code": code, "X-Error-Message": message, **headers})

    def find_repo(request: Request) -> tuple[str, dict[str, bytes] | None, Response | None]:
        repo_id, revision = request.path_params["repo_id"], request.path_params["revision"]
        if repo_id not in repos:
            return repo_id, None, error("RepoNotFound", "Repository not found")
        if revision not in ("main", shas[repo_id]):
            return repo_id, None, error("RevisionNotFound", "Invalid rev id: " + revision)
        return repo_id, repos[repo_id], None

    async def record(request: Request, call_next):
        requests.append((request.method, request.url.path))
        return await call_next(request)

    async def revision_info(request: Request) -> Response:
        repo_id, files, failed = find_repo(request)
        if failed:
            return failed
        return JSONResponse({"id": repo_id, "sha": shas[repo_id], "private": False,
                             "siblings": [{"rfilename": path} for path in sorted(files)]})

    async def tree(request: Request) -> Response:
        _, files, failed = find_repo(request)
        if failed:
            return failed
        return JSONResponse([{"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)}
                             for path, data in sorted(files.items())])

    async def resolve(request: Request) -> Response:
        repo_id, files, failed = find_repo(request)
        if failed:
            return failed
        path = request.path_params["path"]
        if path not in files:
            return error("EntryNotFound", f"{path} does not exist on \"main\"", **{"X-Repo-Commit": shas[repo_id]})
        data = files[path]
        headers = {"X-Repo-Commit": shas[repo_id], "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        # Starlette sets Content-Length from the body; uvicorn sends no body for HEAD.
        return Response(data, media_type="application/octet-stream", headers=headers)

    app = Starlette(routes=[
        Route("/api/models/{repo_id:path}/revision/{revision}", revision_info, methods=["GET"]),
        Route("/api/models/{repo_id:path}/tree/{revision}", tree, methods=["GET"]),
        Route("/{repo_id:path}/resolve/{revision}/{path:path}", resolve, methods=["GET", "HEAD"]),
    ], middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)])
    app.state.requests = requests
    app.state.shas = shas
    return app
