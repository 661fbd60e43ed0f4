"""Platform resources: service status, the user, the agent download, and what is out of scope (501)."""

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from ..db.models import User
from ..errors import NotFound, NotImplementedYet
from ..wire import resources
from ..wire.negotiation import render
from .deps import Services, acted_upon, services

router = APIRouter(tags=["platform"])
agent_router = APIRouter(tags=["platform"])

# Built by `make agent`; the server looks beside the source tree and in the working directory.
AGENT_CANDIDATES = (Path(__file__).parents[4] / "dist" / "machinescan-agent.pyz",
                    Path("dist") / "machinescan-agent.pyz")


@router.get("/status")
def status(request: Request, app: Services = Depends(services)):
    return render(request, "serviceStatus", resources.service_status(app.settings.api_version))


@router.get("/users/{uid}")
def get_user(request: Request, user: User = Depends(acted_upon)):
    return render(request, "user", resources.user(user))


@agent_router.get("/resources/uforge-scan.bin")
def agent_download():
    for candidate in AGENT_CANDIDATES:
        if candidate.is_file():
            return FileResponse(candidate, media_type="application/octet-stream", filename="uforge-scan.bin")
    raise NotFound("the agent has not been built on this server: run `make agent`")


OUT_OF_SCOPE = ("imports", "goldens", "images", "migrations")


def not_implemented() -> None:
    raise NotImplementedYet("template imports, image generation, publishing and migrations are not "
                            "part of machinescan (yet)")


for resource_name in OUT_OF_SCOPE:
    for path in (f"/users/{{uid}}/{resource_name}", f"/users/{{uid}}/{resource_name}/{{rest:path}}",
                 f"/users/{{uid}}/scannedinstances/{{siid}}/scans/{{sid}}/{resource_name}",
                 f"/users/{{uid}}/scannedinstances/{{siid}}/scans/{{sid}}/{resource_name}/{{rest:path}}"):
        router.add_api_route(path, not_implemented, methods=["GET", "POST", "PUT", "DELETE"],
                             include_in_schema=False, dependencies=[Depends(acted_upon)])
