# One image for both servers; docker-compose.yml picks which one runs.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# Every module the servers import, and the page template; tests/test_docker.py starts both
# servers from exactly these files.
COPY config.py common.py stats.py sync_http.py async_http.py sync_pools.py async_pools.py ./
COPY sync_server.py async_server.py ./
COPY templates templates
