# ci-prober: multi-stage build; the runtime image holds only dist/ and production dependencies.
# BASE_IMAGE: any image with node >= 20.18, npm, /bin/sh and a `node` user (the suite builds one
# from the test machine's own node, without Docker Hub: test/integration/image/).
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# The image's own non-root user. To read a runner's files, mount them read-only
# and run with that owner's uid/gid (see README, "Deploy on a runner host").
USER node
EXPOSE 9839
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:9839/-/healthy').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD ["run"]
